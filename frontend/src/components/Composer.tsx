import { useEffect, useRef, useState } from "preact/hooks";
import { acceptAttachments, formatBytes, isImage } from "../lib/attachments";
import { Icon } from "./Icon";

interface Pending {
  id: number;
  file: File;
  preview?: string;
}

let nextId = 1;

/**
 * Message box: Enter sends, Shift+Enter makes a new line; grows with its text. With
 * `attachments`, files can be attached (button, paste or drop) and are passed to onSubmit.
 */
export function Composer({
  onSubmit,
  disabled = false,
  placeholder = "Message the agent…",
  hint,
  autoFocus = false,
  testId = "composer",
  attachments = false,
  onInterrupt,
}: {
  onSubmit: (text: string, files: File[]) => boolean | void | Promise<boolean | void>;
  /** When set (the agent works), a second action: stop the current step and send (Ctrl+Enter). */
  onInterrupt?: (text: string, files: File[]) => boolean | void | Promise<boolean | void>;
  attachments?: boolean;
  disabled?: boolean;
  placeholder?: string;
  hint?: string;
  autoFocus?: boolean;
  testId?: string;
}) {
  const [text, setText] = useState("");
  const [sending, setSending] = useState(false);
  const [pending, setPending] = useState<Pending[]>([]);
  const [attachError, setAttachError] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);
  const ref = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const pendingRef = useRef(pending);
  pendingRef.current = pending;

  // Image previews are object URLs: release them when the composer goes away.
  useEffect(() => () => pendingRef.current.forEach((p) => p.preview && URL.revokeObjectURL(p.preview)), []);

  const addFiles = (list: FileList | File[] | null | undefined) => {
    if (!attachments || !list) return;
    const files = Array.from(list);
    if (!files.length) return;
    const { accepted, errors } = acceptAttachments(files);
    setAttachError(errors.length ? errors.join(" ") : null);
    if (accepted.length)
      setPending((p) => [
        ...p,
        ...accepted.map((file) => ({ id: nextId++, file, preview: isImage(file) ? URL.createObjectURL(file) : undefined })),
      ]);
  };

  const remove = (id: number) => {
    setPending((p) => {
      const gone = p.find((x) => x.id === id);
      if (gone?.preview) URL.revokeObjectURL(gone.preview);
      return p.filter((x) => x.id !== id);
    });
  };

  useEffect(() => {
    if (autoFocus) ref.current?.focus();
  }, [autoFocus]);

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, 240)}px`;
  }, [text]);

  const submit = async (interrupt = false) => {
    const t = text.trim();
    const files = pending.map((p) => p.file);
    if ((!t && !files.length) || disabled || sending) return;
    const action = interrupt && onInterrupt ? onInterrupt : onSubmit;
    setSending(true);
    try {
      const ok = await action(t, files);
      if (ok !== false) {
        setText("");
        pending.forEach((p) => p.preview && URL.revokeObjectURL(p.preview));
        setPending([]);
        setAttachError(null);
      }
    } finally {
      setSending(false);
      ref.current?.focus();
    }
  };

  return (
    <form
      class={`composer ${dragging ? "dragging" : ""}`}
      data-testid={`${testId}-form`}
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
      onDragOver={(e) => {
        if (!attachments || !e.dataTransfer?.types.includes("Files")) return;
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={(e) => {
        if (!attachments) return;
        e.preventDefault();
        setDragging(false);
        addFiles(e.dataTransfer?.files);
      }}
    >
      {pending.length > 0 && (
        <div class="attachments" data-testid="attachments">
          {pending.map((p) => (
            <span key={p.id} class="chip" data-testid="attachment-chip" data-name={p.file.name} title={`${p.file.name} · ${formatBytes(p.file.size)}`}>
              {p.preview ? <img src={p.preview} alt="" /> : <Icon name="file" size={13} />}
              <span class="chip-name">{p.file.name}</span>
              <button type="button" class="icon-btn" aria-label={`Remove ${p.file.name}`} data-testid="attachment-remove" onClick={() => remove(p.id)}>
                <Icon name="x" size={12} />
              </button>
            </span>
          ))}
        </div>
      )}
      {attachments && (
        <>
          <button
            type="button"
            class="btn btn-ghost attach-btn"
            aria-label="Attach files"
            title="Attach files or images (images up to 5 MB)"
            data-testid={`${testId}-attach`}
            disabled={sending}
            onClick={() => fileInput.current?.click()}
          >
            <Icon name="paperclip" />
          </button>
          <input
            ref={fileInput}
            type="file"
            multiple
            hidden
            data-testid={`${testId}-attach-input`}
            onChange={(e) => {
              const el = e.target as HTMLInputElement;
              addFiles(el.files);
              el.value = "";
            }}
          />
        </>
      )}
      <textarea
        ref={ref}
        class="composer-input"
        rows={1}
        value={text}
        placeholder={placeholder}
        aria-label={placeholder}
        data-testid={testId}
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
        onPaste={(e) => {
          const files = e.clipboardData?.files;
          if (attachments && files && files.length) {
            // A pasted image or file: attach it (and keep any text that came along).
            if (!e.clipboardData?.getData("text/plain")) e.preventDefault();
            addFiles(files);
          }
        }}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            void submit(e.ctrlKey || e.metaKey);
          }
        }}
      />
      {onInterrupt && (
        <button
          type="button"
          class="btn btn-danger interrupt-btn"
          aria-label="Interrupt and send"
          title="Stop the agent's current step and send this message now (Ctrl+Enter)"
          data-testid={`${testId}-interrupt`}
          disabled={disabled || sending || (!text.trim() && !pending.length)}
          onClick={() => void submit(true)}
        >
          <Icon name="stop" size={13} />
        </button>
      )}
      <button
        type="submit"
        class="btn btn-primary send-btn"
        aria-label="Send"
        data-testid={`${testId}-send`}
        disabled={disabled || sending || (!text.trim() && !pending.length)}
      >
        <Icon name="send" />
      </button>
      {attachError && (
        <div class="composer-error" role="alert" data-testid="attach-error">
          {attachError}
        </div>
      )}
      {hint && <div class="composer-hint">{hint}</div>}
    </form>
  );
}
