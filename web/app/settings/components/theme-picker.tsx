"use client";

import { Monitor, Moon, Sun } from "lucide-react";
import { useTheme, type Theme } from "@/components/theme";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { Tabs, TabsList, TabsTrigger } from "@/components/ui/tabs";

export function ThemePicker() {
  const { theme, setTheme } = useTheme();
  return (
    <Card>
      <CardHeader>
        <CardTitle>Theme</CardTitle>
      </CardHeader>
      <CardContent>
        <Tabs value={theme} onValueChange={(v) => setTheme(v as Theme)}>
          <TabsList aria-label="Theme">
            <TabsTrigger value="light">
              <Sun className="mr-1 size-4" /> Light
            </TabsTrigger>
            <TabsTrigger value="dark">
              <Moon className="mr-1 size-4" /> Dark
            </TabsTrigger>
            <TabsTrigger value="system">
              <Monitor className="mr-1 size-4" /> System
            </TabsTrigger>
          </TabsList>
        </Tabs>
      </CardContent>
    </Card>
  );
}
