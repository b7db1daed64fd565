import { useEffect, useState } from "preact/hooks";

/** Re-renders the component (at most once per frame) when the subscribable changes. */
export function useSubscription(target: { subscribe(fn: () => void): () => void } | null): number {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!target) return;
    let frame = 0;
    const unsub = target.subscribe(() => {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        setTick((t) => t + 1);
      });
    });
    return () => {
      unsub();
      if (frame) cancelAnimationFrame(frame);
    };
  }, [target]);
  return tick;
}
