// Polls a URL until it answers 200 or the deadline passes (run inside a namespace by netns.mjs).
//   node probe.mjs <url> <timeout-ms>
const [url, ms = '30000'] = process.argv.slice(2);
const deadline = Date.now() + Number(ms);
let last = 'no attempt';
while (Date.now() < deadline) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    if (res.status === 200) process.exit(0);
    last = `HTTP ${res.status}`;
  } catch (e) {
    last = e.cause?.code || e.message;
  }
  await new Promise((r) => setTimeout(r, 200));
}
console.log(`no 200 from ${url} within ${ms} ms (last: ${last})`);
process.exit(1);
