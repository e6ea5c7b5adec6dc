// bench/peers/pocketflow_side.js — PocketFlow's side of the peer comparison
// (issue 14): one row of bench/peers/peers.lua measured in this process,
// printed as one line `result <row> <value>` (µs per unit of work, or KiB
// per paused run).
//
// Run: node --expose-gc bench/peers/pocketflow_side.js ROW [--warm N] [--reps N]
// with ROW one of chain, loop, single, paused, fan, batch, pbatch. The graphs and the work
// per node are those of bench/peers/weft_side.lua: keep the two files in
// step (same sizes, same work, same warm-up and repetitions).
//
// PocketFlow API used (pocketflow 1.0.4, the TypeScript port, whose every
// method is async: there is no separate AsyncNode/AsyncFlow as in Python):
// - Node with prep(shared) / exec(prepRes) / post(shared, prepRes, execRes):
//   prep reads the shared store, exec computes, post writes the shared store
//   and returns the action that picks the successor;
// - node.next(other) (the "default" action) and node.on(action, other);
// - Flow(start).run(shared), which clones each node before running it;
// - ParallelBatchFlow: prep(shared) returns one params object per branch and
//   the flow runs its start node once per params object, all concurrently
//   (Promise.all); the node reads its params from this._params.
// Every run is checked; a run that does not end as expected throws (exit
// status non-zero). Timings are never asserted.
"use strict";

const { Node, Flow, BatchNode, ParallelBatchNode, ParallelBatchFlow } = require("pocketflow");

const CHAIN = 1000, LOOP = 10000, SINGLE_BATCH = 2000, PAUSED = 10000, FAN = 1000, BATCH = 1000;

const argv = process.argv.slice(2);
const row = argv[0];
const opts = { warm: 5, reps: 7 };
for (let i = 1; i < argv.length; i += 2) {
  const a = argv[i], v = Number(argv[i + 1]);
  if ((a === "--warm" || a === "--reps") && Number.isInteger(v) && v >= 0) {
    opts[a.slice(2)] = v;
  } else {
    throw new Error("usage: node --expose-gc bench/peers/pocketflow_side.js " +
      `chain|loop|single|paused|fan|batch|pbatch [--warm N] [--reps N] (bad argument '${a}')`);
  }
}
if (opts.reps < 1) opts.reps = 1;
if (typeof global.gc !== "function") throw new Error("pocketflow_side.js: run node with --expose-gc");

const clock = () => Number(process.hrtime.bigint()) * 1e-9;

function median(xs) {
  xs.sort((a, b) => a - b);
  const n = xs.length;
  return n % 2 === 1 ? xs[(n - 1) / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

function check(label, ok, what) {
  if (!ok) throw new Error(`${label}: ${what}`);
}

// Call once() warm times untimed, then reps times after a full GC (not
// timed); once resolves to seconds. Resolves to the median in µs / per.
async function measure(once, per) {
  for (let r = 0; r < opts.warm; r++) { global.gc(); await once(); }
  const ts = [];
  for (let r = 0; r < opts.reps; r++) {
    global.gc();
    ts.push((await once()) / per * 1e6);
  }
  return median(ts);
}

const rows = {};

// (1) A chain of CHAIN nodes joined by next(); each reads shared.n (prep),
// adds 1 (exec) and writes it back (post), then takes the default action
// (weft: get_state, set_state, send). Per node.
class Step extends Node {
  async prep(shared) { return shared.n ?? 0; }
  async exec(n) { return n + 1; }
  async post(shared, _prep, n) { shared.n = n; return undefined; }
}
rows.chain = async () => {
  const nodes = [];
  for (let k = 0; k < CHAIN; k++) nodes.push(new Step());
  for (let k = 0; k < CHAIN - 1; k++) nodes[k].next(nodes[k + 1]);
  const flow = new Flow(nodes[0]);
  return measure(async () => {
    const shared = {};
    const t0 = clock();
    await flow.run(shared);
    const t = clock() - t0;
    check("chain", shared.n === CHAIN, `shared.n = ${shared.n} (expected ${CHAIN})`);
    return t;
  }, CHAIN);
};

// (2) A loop a <-> b of LOOP steps: each adds 1 to the counter shared.n
// (PocketFlow has no messages: the shared store is the channel) and takes
// the action "more" while it is below LOOP (the exit condition), else
// "done", which leads to a node that outputs it (weft: the conditional
// edges drop the last message and the executor yields the output itself;
// here that is one more node run per 10,000 steps). Per step.
class Count extends Node {
  async prep(shared) { return shared.n; }
  async exec(n) { return n + 1; }
  async post(shared, _prep, n) { shared.n = n; return n < LOOP ? "more" : "done"; }
}
class Output extends Node {
  async post(shared) { shared.output = shared.n; return undefined; }
}
rows.loop = async () => {
  const a = new Count(), b = new Count(), out = new Output();
  a.on("more", b).on("done", out);
  b.on("more", a).on("done", out);
  const flow = new Flow(a);
  return measure(async () => {
    const shared = { n: 0 };
    const t0 = clock();
    await flow.run(shared);
    const t = clock() - t0;
    check("loop", shared.output === LOOP, `output ${shared.output} (expected ${LOOP})`);
    return t;
  }, LOOP);
};

// (3) The fixed cost of a run: a Flow of one Node that does nothing (the
// default prep/exec/post), run SINGLE_BATCH times in a row per measurement,
// each run on a fresh shared store. Per run.
rows.single = async () => {
  const flow = new Flow(new Node());
  return measure(async () => {
    const t0 = clock();
    let shared;
    for (let k = 0; k < SINGLE_BATCH; k++) { shared = {}; await flow.run(shared); }
    const t = clock() - t0;
    check("single", shared !== undefined, "no run");
    return t;
  }, SINGLE_BATCH);
};

// (4) PAUSED runs of a Flow of one node whose exec awaits a promise that
// is resolved later (the request for input: its resolver is kept in
// `requests`, as weft keeps the waiting invocation), all paused at once:
// the V8 heap they hold (process.memoryUsage().heapUsed after a full GC,
// minus the same before the first run), per run, in KiB. One measurement,
// no warm-up, as on weft's side. Then every request is answered and every
// run must end with its answer.
const requests = [];
class Ask extends Node {
  async prep(shared) { return shared.question; }
  async exec(question) { return new Promise((resolve) => requests.push({ question, resolve })); }
  async post(shared, _prep, answer) { shared.output = answer; return undefined; }
}
rows.paused = async () => {
  const flow = new Flow(new Ask());
  const runs = [], shareds = [];
  global.gc(); global.gc();
  const before = process.memoryUsage().heapUsed;
  for (let k = 0; k < PAUSED; k++) {
    const shared = { question: "q" };
    shareds.push(shared);
    runs.push(flow.run(shared));
  }
  // every run reaches its await on the request within the microtasks that
  // follow: one macrotask later they are all paused
  await new Promise((resolve) => setImmediate(resolve));
  check("paused", requests.length === PAUSED, `${requests.length} runs paused (expected ${PAUSED})`);
  global.gc(); global.gc();
  const kib = (process.memoryUsage().heapUsed - before) / 1024 / PAUSED;
  for (const q of requests) q.resolve("a");
  await Promise.all(runs);
  for (const s of shareds) check("paused", s.output === "a", `output ${s.output}`);
  return kib;
};

// (5) A ParallelBatchFlow whose prep returns FAN params objects {k} (built
// once, as weft builds its FAN executors once); each branch runs a node
// that appends its k to the shared list shared.items (weft: FAN executors
// each set_state into a weft.reduce.append key). Per branch.
class Append extends Node {
  async post(shared) { shared.items.push(this._params.k); return undefined; }
}
class Fan extends ParallelBatchFlow {
  constructor(start, params) { super(start); this.branches = params; }
  async prep() { return this.branches; }
}
rows.fan = async () => {
  const params = [];
  for (let k = 1; k <= FAN; k++) params.push({ k });
  const flow = new Fan(new Append(), params);
  return measure(async () => {
    const shared = { items: [] };
    const t0 = clock();
    await flow.run(shared);
    const t = clock() - t0;
    check("fan", shared.items.length === FAN, `${shared.items.length} items (expected ${FAN})`);
    return t;
  }, FAN);
};

// (6) and (7) A BatchNode / ParallelBatchNode over BATCH numbers: exec
// doubles each (no I/O: the cost of the batch machinery itself), post keeps
// the list (weft: weft.flow's BatchNode / AsyncParallelBatchNode, whose
// parallel items each run in a weft task). Per item.
function batchRow(Base) {
  class Double extends Base {
    async prep(shared) { return shared.items; }
    async exec(x) { return x * 2; }
    async post(shared, _prep, out) { shared.out = out; return undefined; }
  }
  const items = [];
  for (let k = 1; k <= BATCH; k++) items.push(k);
  const flow = new Flow(new Double());
  return measure(async () => {
    const shared = { items };
    const t0 = clock();
    await flow.run(shared);
    const t = clock() - t0;
    check(Base.name, shared.out.length === BATCH && shared.out[BATCH - 1] === 2 * BATCH,
      `${shared.out.length} results (expected ${BATCH})`);
    return t;
  }, BATCH);
}
rows.batch = () => batchRow(BatchNode);
rows.pbatch = () => batchRow(ParallelBatchNode);

const f = rows[row];
if (!f) throw new Error(`pocketflow_side.js: unknown row '${row}' (rows: chain, loop, single, paused, fan, batch, pbatch)`);
f().then((v) => process.stdout.write(`result ${row} ${v.toFixed(6)}\n`)).catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exitCode = 1;
});
