/** `url` without the slashes it ends with: a loop, since `/\/+$/` takes time quadratic in a run of slashes. */
export function withoutTrailingSlashes(url: string): string {
  let end = url.length;
  while (end > 0 && url[end - 1] === "/") end--;
  return url.slice(0, end);
}
