import type { ComponentChildren, VNode } from "preact";
import { memo } from "preact/compat";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { type Anchor, anchorAt, offsetsOf, rangeAt, topFor } from "../lib/virtual";

/** Distance from the bottom (px) within which the list counts as at the bottom. */
const BOTTOM_SLACK = 80;

export interface VirtualListProps<T> {
  items: readonly T[];
  itemKey: (item: T) => string;
  renderItem: (item: T) => VNode;
  /** Extra class of an item's row (e.g. one without spacing). */
  rowClass?: (item: T) => string;
  /** Height assumed for an item not measured yet, px. */
  estimate?: number;
  /** Rendered beyond the viewport on each side, px. */
  overscan?: number;
  /** Attributes of the spacer standing for items [from, to) (they are not in the DOM). */
  spacerProps?: (from: number, to: number) => Record<string, string>;
  /** Above the items, inside the scroller (keep its height constant). */
  header?: ComponentChildren;
  /** Below the items, inside the scroller. */
  footer?: ComponentChildren;
  /** Called (repeatedly) while the view is within `nearTopPx` of the first item. */
  onNearTop?: () => void;
  nearTopPx?: number;
  /** Told whenever the view arrives at or leaves the bottom. */
  onBottomChange?: (atBottom: boolean) => void;
  /** Rows re-render only when their item or this value changes (what `renderItem` depends on besides the item). */
  renderVersion?: unknown;
  /** Changing this number jumps to the bottom (and sticks there). */
  jumpToBottom?: number;
  /** Attributes of the scrolling element (class, test ids, aria). */
  scrollerProps?: Record<string, unknown>;
}

/**
 * A vertical list that keeps only the items in view (plus `overscan`) in the DOM. Item
 * heights are measured after rendering and cached by key; unmeasured items count with
 * `estimate`. At the bottom it stays at the bottom as items arrive; elsewhere the first
 * item in view stays where it is when items are prepended or measured above it.
 */
export function VirtualList<T>(props: VirtualListProps<T>) {
  const { items, itemKey, renderItem, estimate = 80, overscan = 600 } = props;
  const scroller = useRef<HTMLDivElement>(null);
  const list = useRef<HTMLDivElement>(null);
  const heights = useRef(new Map<string, number>()).current;
  const [measured, setMeasured] = useState(0);
  const [, setTick] = useState(0);
  const view = useRef({ scrollTop: 0, height: 0, headerH: 0, stick: true, anchor: null as Anchor | null, top: 0 });

  const keys = useMemo(() => items.map(itemKey), [items]);
  const index = useMemo(() => new Map(keys.map((k, i) => [k, i])), [keys]);
  const offsets = useMemo(() => offsetsOf(keys, heights, estimate), [keys, measured]);
  const total = offsets[keys.length];

  // Where the view is to be, in list coordinates.
  const v = view.current;
  let top: number;
  if (v.stick) top = Math.max(0, total - v.height);
  else top = (v.anchor && topFor(v.anchor, index, offsets)) ?? Math.max(0, v.scrollTop - v.headerH);
  v.top = top;
  const { start, end } = rangeAt(offsets, top, v.height || 1000, overscan);
  const rendered = useRef({ start, end });
  rendered.current = { start, end };

  const remember = () => {
    const el = scroller.current;
    if (!el) return;
    v.scrollTop = el.scrollTop;
    v.height = el.clientHeight;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < BOTTOM_SLACK;
    if (atBottom !== v.stick) {
      v.stick = atBottom;
      props.onBottomChange?.(atBottom);
    }
    v.anchor = anchorAt(keys, offsets, Math.max(0, el.scrollTop - v.headerH));
  };

  /** Measures the rendered rows; true when a height changed. */
  const measure = (): boolean => {
    const box = list.current;
    if (!box) return false;
    let changed = false;
    for (const row of Array.from(box.children) as HTMLElement[]) {
      const key = row.dataset.vkey;
      if (key === undefined) continue;
      const h = row.offsetHeight;
      if (heights.get(key) !== h) {
        heights.set(key, h);
        changed = true;
      }
    }
    return changed;
  };

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    v.headerH = list.current ? list.current.offsetTop - el.offsetTop : 0;
    if (v.height !== el.clientHeight) {
      v.height = el.clientHeight;
      setTick((t) => t + 1);
    }
    if (measure()) setMeasured((m) => m + 1);
    if (v.stick) el.scrollTop = el.scrollHeight;
    else {
      const want = v.top + v.headerH;
      if (Math.abs(el.scrollTop - want) >= 1) el.scrollTop = want;
    }
    if (props.onNearTop && top < (props.nearTopPx ?? 1500)) props.onNearTop();
  });

  // Rows and the viewport that change size later (images, expanded cards, window resize).
  useEffect(() => {
    const el = scroller.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(() => {
      if (measure()) setMeasured((m) => m + 1);
      else if (el.clientHeight !== view.current.height) setTick((t) => t + 1);
    });
    ro.observe(el);
    if (list.current) ro.observe(list.current);
    return () => ro.disconnect();
  }, []);

  useEffect(() => {
    if (props.jumpToBottom === undefined || !scroller.current) return;
    v.stick = true;
    scroller.current.scrollTop = scroller.current.scrollHeight;
    setTick((t) => t + 1);
  }, [props.jumpToBottom]);

  const onScroll = () => {
    remember();
    // Re-render only when other items come into range (or the view must follow the bottom).
    const el = scroller.current;
    if (!el) return;
    const at = v.stick ? Math.max(0, total - v.height) : Math.max(0, el.scrollTop - v.headerH);
    const next = rangeAt(offsets, at, v.height || 1000, overscan);
    if (next.start !== rendered.current.start || next.end !== rendered.current.end) setTick((t) => t + 1);
    else if (props.onNearTop && at < (props.nearTopPx ?? 1500)) props.onNearTop();
  };

  const rows: VNode[] = [];
  for (let i = start; i < end; i++) {
    const it = items[i];
    rows.push(
      <Row key={keys[i]} rowKey={keys[i]} cls={props.rowClass?.(it) ?? ""} item={it} render={renderItem} version={props.renderVersion} />,
    );
  }
  return (
    <div {...props.scrollerProps} ref={scroller} onScroll={onScroll}>
      {props.header}
      <div class="vlist" ref={list} style={{ paddingTop: `${offsets[start]}px`, paddingBottom: `${total - offsets[end]}px` }}>
        {start > 0 && <div class="vspacer" hidden {...props.spacerProps?.(0, start)} />}
        {rows}
        {end < keys.length && <div class="vspacer" hidden {...props.spacerProps?.(end, keys.length)} />}
      </div>
      {props.footer}
    </div>
  );
}

interface RowProps {
  rowKey: string;
  cls: string;
  item: unknown;
  render: (item: any) => VNode;
  version: unknown;
}

/** One item's row; skipped on re-render while its item and the render version are the same. */
const Row = memo(
  ({ rowKey, cls, item, render }: RowProps) => (
    <div class={`vrow ${cls}`} data-vkey={rowKey}>
      {render(item)}
    </div>
  ),
  (a, b) => a.item === b.item && a.version === b.version && a.cls === b.cls,
);
