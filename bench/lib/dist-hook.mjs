/**
 * Loaded with `node --import` by run.mjs into every suite process (and
 * inherited by its worker threads): when ATOMIC_PACE_BENCH_DIST names a
 * snapshot of dist/, every import of the live dist/ resolves to the snapshot
 * instead. Others may rebuild dist/ while a long run is in progress; pinning
 * one copy at the start means every suite, thread and process of the run
 * measures the same build.
 */
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const snapshot = process.env.ATOMIC_PACE_BENCH_DIST;
if (snapshot) {
  const live = pathToFileURL(path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'dist') + path.sep).href;
  register('./dist-redirect.mjs', import.meta.url, { data: { live, snapshot: pathToFileURL(snapshot + path.sep).href } });
}
