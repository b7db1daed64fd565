import { useEffect, useRef, useState } from "preact/hooks";
import { Icon } from "./Icon";

/** Message box: Enter sends, Shift+Enter makes a new line; grows with its text. */
export function Composer({
  onSubmit,
  disabled = false,
  placeholder = "Message the agent…",
  hint,
  autoFocus = false,
  testId = "composer",
}: {
  onSubmit: (text: string) => boolean | void | Promise<boolean | void>;
  disabled?: boolean;
  placeholder?: string;
  hint?: string;
  autoFocus?: boolean;
  testId?: string;
}) {
  const [text, setText] = useState("");
  const [sending, setSending] = useState(false);
  const ref = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    if (autoFocus) ref.current?.focus();
  }, [autoFocus]);

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, 240)}px`;
  }, [text]);

  const submit = async () => {
    const t = text.trim();
    if (!t || disabled || sending) return;
    setSending(true);
    try {
      const ok = await onSubmit(t);
      if (ok !== false) setText("");
    } finally {
      setSending(false);
      ref.current?.focus();
    }
  };

  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <textarea
        ref={ref}
        class="composer-input"
        rows={1}
        value={text}
        placeholder={placeholder}
        aria-label={placeholder}
        data-testid={testId}
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            void submit();
          }
        }}
      />
      <button
        type="submit"
        class="btn btn-primary send-btn"
        aria-label="Send"
        data-testid={`${testId}-send`}
        disabled={disabled || sending || !text.trim()}
      >
        <Icon name="send" />
      </button>
      {hint && <div class="composer-hint">{hint}</div>}
    </form>
  );
}
