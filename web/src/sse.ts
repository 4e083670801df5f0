// Server-sent events over fetch(): EventSource cannot send an Authorization
// header, so the stream is read and parsed here (the text/event-stream format:
// "event:", "data:", "id:" and "retry:" lines, a blank line ends an event).

import { failure, headers, url } from "./api";

export interface StreamEvent {
  event: string;
  data: string;
  id: string | null;
}

/** Splits a text/event-stream into events; feed it chunks as they arrive. */
export class EventParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private id: string | null = null;

  feed(chunk: string): StreamEvent[] {
    this.buffer += chunk;
    const out: StreamEvent[] = [];
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      const done = this.line(line);
      if (done) out.push(done);
    }
    return out;
  }

  private line(line: string): StreamEvent | null {
    if (line === "") {
      if (this.data.length === 0) return null;
      const done = { event: this.event || "message", data: this.data.join("\n"), id: this.id };
      this.event = "";
      this.data = [];
      return done;
    }
    if (line.startsWith(":")) return null; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id") this.id = value;
    return null;
  }
}

export interface StreamHandlers {
  onEvent: (event: StreamEvent) => void;
  onOpen: () => void;
  /** The stream ended or failed; `permanent` when retrying cannot help (404, 401, 403). */
  onError: (message: string, permanent: boolean) => void;
}

/** Reads `path` until `signal` aborts; the caller decides about reconnecting. */
export async function readStream(path: string, handlers: StreamHandlers, signal: AbortSignal): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url(path), {
      headers: headers({ Accept: "text/event-stream" }),
      credentials: "same-origin",
      cache: "no-store",
      signal,
    });
  } catch (err) {
    if (!signal.aborted) handlers.onError(`stream unreachable: ${String(err)}`, false);
    return;
  }
  if (!response.ok || !response.body) {
    const error = failure(response, await response.text(), false);
    handlers.onError(error.readable, [401, 403, 404, 405].includes(response.status));
    return;
  }
  handlers.onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new EventParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const event of parser.feed(value)) handlers.onEvent(event);
    }
    if (!signal.aborted) handlers.onError("the controller closed the stream", false);
  } catch (err) {
    if (!signal.aborted) handlers.onError(`stream interrupted: ${String(err)}`, false);
  }
}
