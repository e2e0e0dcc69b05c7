// One raw HTTP exchange over a new TCP connection, for what fetch cannot send (no Host, HTTP/1.0,
// CONNECT, a malformed line): the request's bytes as given, the answer read until the server
// closes the connection.
import { connect } from "node:net";

/** Sends `request` on a new connection to 127.0.0.1:`port` and reads until the server closes it. */
export function exchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(request));
    let answer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (answer += chunk));
    socket.on("end", () => resolve(answer));
    socket.on("error", reject);
  });
}

/** An answer's status line, headers (names lower-cased) and body. */
export function parseAnswer(answer: string): { status: string; headers: Record<string, string>; body: string } {
  const [head = "", ...rest] = answer.split("\r\n\r\n");
  const [status = "", ...lines] = head.split("\r\n");
  const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]));
  return { status, headers, body: rest.join("\r\n\r\n") };
}
