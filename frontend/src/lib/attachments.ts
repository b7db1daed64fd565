// Attachments of a chat message: images travel inline as data URLs (`args.image_urls`),
// other files are uploaded to the workspace first and named in `args.file_urls`.

export const MAX_IMAGE_BYTES = 5 * 1024 * 1024;

export interface FileLike {
  name: string;
  type: string;
  size: number;
}

export function isImage(f: FileLike): boolean {
  return /^image\//.test(f.type);
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/** Splits picked files into the ones to attach and messages about those refused. */
export function acceptAttachments<T extends FileLike>(files: T[]): { accepted: T[]; errors: string[] } {
  const accepted: T[] = [];
  const errors: string[] = [];
  for (const f of files) {
    if (isImage(f) && f.size > MAX_IMAGE_BYTES) {
      errors.push(`${f.name || "The image"} is too large (${formatBytes(f.size)}): images can be at most 5 MB each.`);
    } else accepted.push(f);
  }
  return { accepted, errors };
}

/** The message action's args: the text, plus the uploaded files' paths appended as upstream does. */
export function messageArgs(content: string, imageUrls: string[] = [], fileUrls: string[] = []) {
  const text = fileUrls.length ? `${content}${content ? "\n\n" : ""}Attached files: ${fileUrls.join(", ")}` : content;
  return { content: text, image_urls: imageUrls, file_urls: fileUrls };
}

/** Reads a file as a data URL (base64). */
export function readAsDataUrl(file: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result));
    r.onerror = () => reject(r.error ?? new Error("Cannot read the file"));
    r.readAsDataURL(file);
  });
}
