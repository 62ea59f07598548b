import { PageHeader } from "@/components/app-shell";
import { ApiKeyForm } from "@/app/settings/components/api-key-form";
import { ThemePicker } from "@/app/settings/components/theme-picker";

export default function SettingsPage() {
  return (
    <>
      <PageHeader title="Settings" description="Kept in this browser only." />
      <div className="grid max-w-2xl gap-4">
        <ApiKeyForm />
        <ThemePicker />
      </div>
    </>
  );
}
