import { AlertsView } from "@/app/alerts/components/alerts-view";

export default function AlertsPage() {
  return <AlertsView />;
}
