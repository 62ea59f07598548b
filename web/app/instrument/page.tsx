import { Suspense } from "react";
import { LoadingRows } from "@/components/query-state";
import { InstrumentView } from "@/app/instrument/components/instrument-view";

export default function InstrumentPage() {
  return (
    <Suspense fallback={<LoadingRows rows={8} />}>
      <InstrumentView />
    </Suspense>
  );
}
