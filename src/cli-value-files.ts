// A JSON value given on the command line as @FILE is read from that file, and @- from standard
// input (curl's --data @file): a payload past the shell's limit on one argument (about 128 KiB on
// Linux, where the server takes 1 MiB by default), or one another program writes (`jq … |
// coordination events publish T --payload @-`), needs no quoting. JSON never begins with "@", so
// no value that was JSON before reads differently now.
import { constants, createReadStream, open, type ReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { Socket } from "node:net";
import { promisify } from "node:util";
import { OperatorUsageError } from "./cli-options.js";
import { printable } from "./cli-text.js";

/** The most a value read from a file or standard input may be: the largest body a server may be set to take (maxBodyBytes). */
export const MAX_VALUE_FILE_BYTES = 64 * 1024 * 1024;

/**
 * Reading a value was interrupted (Ctrl-C, SIGTERM): not a usage error, and nothing was sent.
 * The command ends as an interrupted one does (INTERRUPTED_EXIT), in one line, no usage after it.
 */
export class ReadInterrupted extends Error {}

/** The exit code of a command interrupted before it sent anything: a shell's for SIGINT (128 + 2). */
export const INTERRUPTED_EXIT = 130;

/** Where a command's JSON values are: `--payload` wherever it is taken, and `kv set KEY VALUE`'s VALUE. */
interface ValueSlots {
  words: string[];
  options: Record<string, string | true>;
}

/**
 * Replaces each JSON value given as `@PATH` (or `@-`) with the text it names, in place. A file
 * that cannot be read, one larger than MAX_VALUE_FILE_BYTES, `@-` twice or with no standard input
 * is an OperatorUsageError naming the option. A UTF-8 byte order mark (a file saved by some
 * Windows editors) is left out; whether the text is JSON is the option's reader's to say.
 */
export async function readValueFiles({ words, options }: ValueSlots, stdin: (() => Promise<string>) | undefined, signal?: AbortSignal): Promise<void> {
  let stdinTaken: string | undefined;
  const read = async (given: string, name: string): Promise<string> => {
    const path = given.slice(1);
    if (path === "-") {
      if (stdinTaken !== undefined) throw new OperatorUsageError(`${name} @- reads standard input, which ${stdinTaken} reads already`);
      if (stdin === undefined) throw new OperatorUsageError(`${name} @- reads standard input, and this command has none`);
      stdinTaken = name;
      try {
        return withoutBom(await stdin());
      } catch (error) {
        // Said of the option that reads it: "--payload @-: standard input is …".
        if (error instanceof OperatorUsageError) throw new OperatorUsageError(`${name} @-: ${error.message}`);
        throw error;
      }
    }
    if (path === "") throw new OperatorUsageError(`${name} @ needs a file after it: @payload.json, or @- for standard input`);
    return withoutBom(await readValueFile(path, name, signal));
  };
  // Said here, where the file is known: the option's reader would show the text's start alone.
  const readJson = async (given: string, name: string): Promise<string> => {
    const text = await read(given, name);
    // Nothing to read (a job run with no standard input, a file not written yet) said as such, not as JSON.parse's "Unexpected end".
    if (text.trim() === "") throw new OperatorUsageError(given === "@-" ? `${name} @-: standard input is empty (pipe the value to it: jq … | coordination … @-)` : `${name} ${given}: the file is empty`);
    try {
      JSON.parse(text);
    } catch (error) {
      throw new OperatorUsageError(`${name} ${given}: ${given === "@-" ? "standard input" : "the file"} is not JSON (${(error as Error).message})`);
    }
    return text;
  };
  try {
    const payload = options["--payload"];
    if (typeof payload === "string" && payload.startsWith("@")) options["--payload"] = await readJson(payload, "--payload");
    if (words[0] === "kv" && words[1] === "set" && words.length === 4 && words[3]!.startsWith("@")) words[3] = await readJson(words[3]!, "kv set's VALUE");
  } catch (error) {
    // What is said quotes the file's name and JSON.parse's view of its text (anyone's: a payload
    // downloaded, a file named by a glob): their control characters as escapes, never raw to the
    // terminal (an ESC sequence sets its title or clears its screen).
    if (error instanceof OperatorUsageError) throw new OperatorUsageError(printable(error.message));
    if (error instanceof ReadInterrupted) throw new ReadInterrupted(printable(error.message));
    throw error;
  }
}

async function readValueFile(path: string, name: string, signal: AbortSignal | undefined): Promise<string> {
  try {
    return await readFileText(path, signal);
  } catch (error) {
    if (error instanceof OperatorUsageError) throw new OperatorUsageError(`${name} @${path}: ${error.message}`);
    if (error instanceof ReadInterrupted) throw new ReadInterrupted(`${name} @${path}: ${error.message}`);
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message;
    throw new OperatorUsageError(`${name} @${path}: cannot read it (${reason})`);
  }
}

/** The text of the file at `path`; an OperatorUsageError, said of "the file", when it is too large or not UTF-8. */
async function readFileText(path: string, signal: AbortSignal | undefined): Promise<string> {
  const file = await stat(path);
  // A FIFO (<(jq …), mkfifo) or a device (/dev/stdin) has no size until read: read as standard
  // input is, bounded as it is read (/dev/zero was read into memory until Node gave up), and
  // ended by Ctrl-C (a FIFO's writer that never comes held a thread Ctrl-C could not free).
  if (!file.isFile() && !file.isDirectory()) {
    const stream = await streamOf(path, file.isFIFO());
    try {
      return await readStream(stream, signal, MAX_VALUE_FILE_BYTES, "the file");
    } finally {
      stream.destroy();
    }
  }
  // Refused before it is read.
  if (file.size > MAX_VALUE_FILE_BYTES) throw new OperatorUsageError(`the file is ${file.size} bytes, more than any server takes (${MAX_VALUE_FILE_BYTES})`);
  const bytes = await readFile(path);
  if (bytes.length > MAX_VALUE_FILE_BYTES) throw new OperatorUsageError(`the file is more than any server takes (${MAX_VALUE_FILE_BYTES} bytes)`);
  return utf8(bytes, "the file");
}

/**
 * A stream of what `path` holds. A FIFO is opened without waiting for its writer and read as a
 * pipe is (the event loop's, not a thread's blocking read): its wait for a writer ends on Ctrl-C.
 */
async function streamOf(path: string, pipe: boolean): Promise<Socket | ReadStream> {
  const fd = await promisify(open)(path, pipe ? constants.O_RDONLY | constants.O_NONBLOCK : constants.O_RDONLY);
  return pipe ? new Socket({ fd, readable: true, writable: false }) : createReadStream("", { fd });
}

/** Fatal: bytes that are not UTF-8 are refused, not replaced by U+FFFD. It leaves out a byte order mark. */
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * `bytes` as text; an OperatorUsageError when they are not UTF-8 (a Latin-1 or UTF-16 file):
 * decoded leniently, "café" in Latin-1 was sent as "caf\uFFFD", the payload altered unsaid.
 */
function utf8(bytes: Uint8Array, what: string): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new OperatorUsageError(`${what} is not UTF-8 text, as JSON is (convert it: iconv -t UTF-8)`);
  }
}

const withoutBom = (text: string): string => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

/**
 * All of `stream` (a command's standard input, or a FIFO's: `what`) as UTF-8 text, at most
 * MAX_VALUE_FILE_BYTES; rejects with an OperatorUsageError past that or when it is not UTF-8, or
 * with a ReadInterrupted when `signal` aborts (Ctrl-C at a terminal that was asked for it).
 */
export function readStream(stream: NodeJS.ReadableStream, signal?: AbortSignal, maxBytes = MAX_VALUE_FILE_BYTES, what = "standard input"): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const end = (settle: () => void) => {
      stream.removeListener("data", onData);
      stream.removeListener("end", onEnd);
      stream.removeListener("error", onError);
      signal?.removeEventListener("abort", onAbort);
      stream.pause();
      settle();
    };
    const onData = (chunk: Buffer | string) => {
      const buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      bytes += buffer.length;
      if (bytes > maxBytes) end(() => reject(new OperatorUsageError(`${what} is more than any server takes (${maxBytes} bytes)`)));
      else chunks.push(buffer);
    };
    const onEnd = () =>
      end(() => {
        try {
          resolve(utf8(Buffer.concat(chunks), what));
        } catch (error) {
          reject(error as Error);
        }
      });
    const onError = (error: Error) => end(() => reject(new OperatorUsageError(`cannot read ${what} (${error.message})`)));
    const onAbort = () => end(() => reject(new ReadInterrupted(`interrupted while reading ${what}: nothing was sent`)));
    if (signal?.aborted) return onAbort();
    stream.on("data", onData);
    stream.once("end", onEnd);
    stream.once("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
    stream.resume();
  });
}
