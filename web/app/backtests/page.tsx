import { Suspense } from "react";
import { LoadingRows } from "@/components/query-state";
import { BacktestsView } from "@/app/backtests/components/backtests-view";

export default function BacktestsPage() {
  return (
    <Suspense fallback={<LoadingRows rows={8} />}>
      <BacktestsView />
    </Suspense>
  );
}
