/** Module resolve hook for dist-hook.mjs: live dist/ URL prefix -> snapshot URL prefix. */
let live;
let snapshot;

export function initialize(data) {
  live = data.live;
  snapshot = data.snapshot;
}

export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (live && result.url.startsWith(live)) return { ...result, url: snapshot + result.url.slice(live.length) };
  return result;
}
