// User-style checks with ioredis and node-redis: run the same scenario against two
// servers and print what each saw, for a diff. Usage: node check.js PORT
const Redis = require('ioredis');
const { createClient } = require('redis');

const port = Number(process.argv[2]);
const out = {};
const rec = (k, v) => { out[k] = v; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha1 = (b) => require('crypto').createHash('sha1').update(b).digest('hex');

async function ioredisPart() {
  const r = new Redis({ port, lazyConnect: false });
  await r.flushall();
  // Scripts as libraries use them: EVALSHA with NOSCRIPT fallback to EVAL.
  r.defineCommand('incrBoth', {
    numberOfKeys: 2,
    lua: "local a = redis.call('INCRBY', KEYS[1], ARGV[1]); local b = redis.call('INCRBY', KEYS[2], ARGV[1]); return {a, b, tostring(a + b)}",
  });
  rec('script1', await r.incrBoth('{a}x', '{b}y', 5));
  await r.script('FLUSH');
  rec('script2', await r.incrBoth('{a}x', '{b}y', 7));
  rec('scriptErr', await r.eval("return redis.call('nosuch')", 0).catch((e) => e.message));
  rec('scriptPcall', await r.eval("local ok = redis.pcall('incr', KEYS[1]); return ok['err']", 1, 'strkey-none').catch((e) => e.message));
  await r.set('str', 'abc');
  rec('scriptWrongType', await r.eval("return redis.pcall('lpush', KEYS[1], 'x')", 1, 'str').catch((e) => e.message));
  // Pipelines and transactions.
  const p = r.pipeline();
  for (let i = 0; i < 100; i++) p.set(`p:${i}`, i);
  p.mget('p:1', 'p:50', 'p:99', 'nope');
  p.incr('str');
  p.hset('h', 'a', '1', 'b', '2');
  p.hgetall('h');
  rec('pipeline', (await p.exec()).slice(-4).map(([e, v]) => (e ? `ERR ${e.message}` : v)));
  // Scripts in pipelines, on keys of every shard, with reads between them (the second
  // and third rounds find the script known, and batched with its shard's requests).
  r.defineCommand('bump', { numberOfKeys: 1, lua: "return redis.call('INCRBY', KEYS[1], ARGV[1])" });
  for (let round = 0; round < 3; round++) {
    const sp = r.pipeline();
    for (let i = 0; i < 30; i++) {
      sp.bump(`{${'abc'[i % 3]}}n${i % 5}`, i);
      if (i % 4 === 0) sp.get(`{${'abc'[(i + 1) % 3]}}n${i % 5}`);
    }
    rec(`scriptPipeline${round}`, (await sp.exec()).map(([e, v]) => (e ? `ERR ${e.message}` : v)));
  }
  const m = await r.multi().set('m1', 'x').lpush('m1', 'y').get('m1').exec();
  rec('multiTypeErr', m.map(([e, v]) => (e ? `ERR ${e.message}` : v)));
  await r.watch('w');
  const other = new Redis({ port });
  await other.set('w', 'changed');
  rec('watched', await r.multi().set('w', 'mine').exec());
  rec('watchedValue', await r.get('w'));
  // Blocking: several clients on one list, items pushed one by one.
  const waiters = [];
  const blockers = [];
  for (let i = 0; i < 5; i++) {
    const b = new Redis({ port });
    blockers.push(b);
    waiters.push(b.blpop('jobs', 5));
  }
  await sleep(100);
  for (let i = 0; i < 5; i++) await other.rpush('jobs', `job${i}`);
  rec('blpop', (await Promise.all(waiters)).map((x) => x && x[1]).sort());
  rec('blmove', await Promise.all([
    blockers[0].blmove('src', 'dst', 'LEFT', 'RIGHT', 2),
    sleep(50).then(() => other.lpush('src', 'a', 'b')),
  ]));
  blockers.forEach((b) => b.disconnect());
  // Pub/sub with patterns, and a message count.
  const sub = new Redis({ port });
  const got = [];
  sub.on('message', (ch, msg) => got.push(`m ${ch} ${msg}`));
  sub.on('pmessage', (pat, ch, msg) => got.push(`p ${pat} ${ch} ${msg}`));
  await sub.subscribe('news', 'sport');
  await sub.psubscribe('n*');
  const n1 = await other.publish('news', 'hello');
  const n2 = await other.publish('nothing', 'x');
  await sleep(100);
  rec('publish', [n1, n2]);
  rec('pubsubGot', got.sort());
  rec('numsub', await other.pubsub('NUMSUB', 'news', 'sport', 'x'));
  rec('numpat', await other.pubsub('NUMPAT'));
  sub.disconnect();
  // Streams with a consumer group.
  await r.xadd('s', '1-1', 'f', 'v1');
  await r.xadd('s', '2-1', 'f', 'v2');
  await r.xgroup('CREATE', 's', 'g', '0');
  rec('xreadgroup', await r.xreadgroup('GROUP', 'g', 'c1', 'COUNT', 1, 'STREAMS', 's', '>'));
  rec('xpending', await r.xpending('s', 'g'));
  rec('xautoclaim', await r.xautoclaim('s', 'g', 'c2', 0, '0-0'));
  // Scan all keys, as dashboards do.
  const keys = [];
  await new Promise((res) => {
    r.scanStream({ count: 10, match: 'p:*' }).on('data', (ks) => keys.push(...ks)).on('end', res);
  });
  rec('scanCount', new Set(keys).size);
  rec('dbsize', await r.dbsize());
  // Expiry and TTL handling.
  await r.set('e', '1', 'PX', 50);
  rec('pttlPositive', (await r.pttl('e')) > 0);
  await sleep(120);
  rec('expired', await r.exists('e'));
  // Client info as ioredis names connections.
  await r.client('SETNAME', 'ioredis-check');
  rec('clientName', await r.client('GETNAME'));
  // MONITOR sees another client's command. ioredis's monitor() opens a second
  // connection beside the instance it is called on; if that instance's own handshake
  // (INFO, CLIENT SETINFO) runs after MONITOR, its line can arrive in the same read as
  // MONITOR's +OK, before ioredis counts the connection as monitoring, and ioredis
  // fails with "Command queue state error" (1 in 200 against redis-server 7.0.15 too).
  // So the instance is ready first.
  const base = new Redis({ port });
  await base.ping();
  const mon = await base.monitor();
  base.disconnect();
  const seen = [];
  mon.on('monitor', (t, args) => seen.push(args.join(' ')));
  await sleep(50);
  await other.set('watched-by-monitor', 'v');
  await sleep(100);
  rec('monitor', seen.filter((s) => s.includes('watched-by-monitor')));
  mon.disconnect();
  // Large values (written from their own buffer past 64 KiB), long LRANGE replies,
  // DUMP payloads of compressed strings (the same bytes as Redis's).
  const big = Buffer.alloc(300000, 0);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 9)) % 251;
  await r.set('big', big);
  await r.set('big64k', big.subarray(0, 65536));
  const bp = r.pipeline();
  for (let i = 0; i < 20; i++) bp.getBuffer(i % 2 ? 'big' : 'big64k').get('str');
  rec('bigPipeline', (await bp.exec()).map(([e, v]) => (e ? e.message : Buffer.isBuffer(v) ? sha1(v) : v)));
  await r.rpush('l600', ...Array.from({ length: 600 }, (_, i) => `e${i}`));
  const lr = await r.lrange('l600', 0, -1);
  rec('lrange600', [lr.length, lr[0], lr[599], sha1(lr.join(','))]);
  await r.set('text', 'user:1 name=alice '.repeat(40));
  rec('dumpText', (await r.dumpBuffer('text')).toString('hex'));
  other.disconnect();
  r.disconnect();
}

async function nodeRedisPart() {
  const c = createClient({ socket: { port }, RESP: 3 });
  await c.connect();
  await c.hSet('nh', { a: '1', b: '2' });
  rec('nr.hGetAll', await c.hGetAll('nh'));
  await c.sAdd('ns', ['x', 'y', 'z']);
  rec('nr.sMembersSize', (await c.sMembers('ns')).length);
  await c.zAdd('nz', [{ score: 1.5, value: 'a' }, { score: 2, value: 'b' }]);
  rec('nr.zRangeWithScores', await c.zRangeWithScores('nz', 0, -1));
  rec('nr.functionLoad', await c.sendCommand(['FUNCTION', 'LOAD', 'REPLACE',
    "#!lua name=nlib\nredis.register_function('getset2', function(k, a) local o = redis.call('get', k[1]); redis.call('set', k[1], a[1]); return o end)"]));
  await c.set('fk', 'old');
  rec('nr.fcall', await c.sendCommand(['FCALL', 'getset2', '1', 'fk', 'new']));
  rec('nr.fk', await c.get('fk'));
  const keys = [];
  for await (const k of c.scanIterator({ MATCH: 'p:*', COUNT: 25 })) keys.push(...[].concat(k));
  rec('nr.scanCount', new Set(keys).size);
  rec('nr.double', await c.sendCommand(['ZSCORE', 'nz', 'a']));
  rec('nr.map', await c.sendCommand(['CONFIG', 'GET', 'maxmemory-policy']));
  const sub = c.duplicate();
  await sub.connect();
  const got = [];
  await sub.sSubscribe('{sh}chan', (m) => got.push(m));
  rec('nr.spublish', await c.sPublish('{sh}chan', 'hi'));
  await sleep(100);
  rec('nr.sgot', got);
  await sub.quit();
  await c.quit();
}

(async () => {
  await ioredisPart();
  await nodeRedisPart();
  console.log(JSON.stringify(out, null, 1));
  process.exit(0);
})().catch((e) => { console.error('FAILED', e); console.log(JSON.stringify(out, null, 1)); process.exit(1); });
