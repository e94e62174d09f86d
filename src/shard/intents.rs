//! What multi-shard transactions claim on a shard, and the work that waits for them
//! (see `runtime::transaction`): per-key intents, as DESIGN.md §2's VLL.
//!
//! # The plan
//! A transaction declares on every shard it touches what it will touch there, its
//! [`Footprint`]: some keys, or the whole shard (a server-wide command, a snapshot, an
//! EXEC with a command that names no key). Its request reaches every shard in one
//! global order (the transaction module pushes all of a transaction's requests under
//! one mutex, and inboxes are FIFO). Here it waits only for the earlier requests that
//! *conflict* with it (a common key, or a whole-shard claim on either side) and for
//! ordinary work parked before it that it conflicts with; it is granted when none is
//! left. It keeps its claim until the transaction releases it, after it has been
//! granted on every shard. Because a request only ever waits for earlier ones, the
//! waits cannot form a cycle.
//!
//! Ordinary work (a command, a batch of commands, any hop) says what it touches too.
//! It waits only while a *granted* claim covers it, or while work parked earlier that
//! it overlaps still waits (so one client's work keeps its order); then it is parked
//! in `parked` and runs when that is over. It need not wait for a request that is not
//! granted yet: that transaction has run nothing here, and what it ran on other shards
//! stays hidden behind its claims there until it has run here too. Parked work holds
//! back the requests that arrive after it and overlap it, so a stream of
//! transactions cannot starve it.
//!
//! # Data
//! Per key, the queue of requests claiming it, oldest first: a
//! granted request is first in each of its queues. Each request counts its obstacles:
//! the queues where it is not first, the whole-shard requests before it (for a
//! whole-shard request: every request before it), and the parked work holding it
//! back. It is granted when the count falls to zero. Costs: O(its keys) per request
//! and per release, a scan of the requests only when a whole-shard request leaves,
//! and one `granted == 0` check for ordinary work when no transaction is here.

use super::Shard;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

pub type Deferred = Box<dyn FnOnce(&mut Shard) + Send>;
/// What a transaction runs on a shard the moment the shard grants its request: at
/// least the grant notice, often the transaction's first step there too.
pub type OnGrant = Box<dyn FnOnce(&mut Shard) + Send>;

/// What a claim or a piece of work covers on one shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Footprint {
    /// Everything on the shard.
    Shard,
    /// These keys, in every database (names are compared, not (db, name) pairs: a
    /// COPY ... DB or a SELECT inside MULTI cannot slip between them).
    Keys(Vec<Bytes>),
}

impl Footprint {
    /// The footprint of `keys`, without duplicates.
    pub fn keys(mut keys: Vec<Bytes>) -> Footprint {
        keys.sort_unstable();
        keys.dedup();
        Footprint::Keys(keys)
    }

    fn overlaps(&self, other: &Footprint) -> bool {
        match (self, other) {
            (Footprint::Keys(a), Footprint::Keys(b)) => a.iter().any(|k| b.contains(k)),
            _ => true,
        }
    }
}

struct Request {
    /// Arrival order on this shard.
    seq: u64,
    claim: Footprint,
    obstacles: usize,
    /// Taken when granted.
    on_grant: Option<OnGrant>,
    /// Its transaction sends this shard nothing more than its release once granted (a
    /// split command's part: see `Tx::run_split`), so the core does not watch for it.
    brief: bool,
}

struct Parked {
    /// The transaction whose work this is, if any (it passes that one's claims).
    tx: Option<u64>,
    footprint: Footprint,
    run: Deferred,
    /// Requests that arrived after it and overlap it: each counts it as an obstacle.
    holds_back: Vec<u64>,
}

/// foldhash, as the keyspace's dicts (`storage::dict`): every multi-shard operation
/// hashes here a few times per key. With std's SipHash the maps cost MULTI of 5
/// commands over 2 shards ~2,500 instructions (36 hashes a transaction). The seed is
/// random per process, as the keyspace's.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
pub struct Intents {
    next_seq: u64,
    requests: FastMap<u64, Request>,
    keys: FastMap<Bytes, VecDeque<u64>>,
    /// Whole-shard requests here: (seq, transaction).
    wholes: Vec<(u64, u64)>,
    granted: usize,
    granted_whole: usize,
    /// Granted claims that are `brief` (see `Request::brief`).
    granted_brief: usize,
    parked: VecDeque<Parked>,
    /// Counts this shard's granted claims (see `set_hint`).
    hint: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
    /// Where this shard says whether it is quiet, and its index (see `publish_to`).
    quiet: Option<(crate::runtime::hop::QuietFlags, usize)>,
}

impl Intents {
    /// Keep `hint` (the count that makes the core's idle loop watch for work before
    /// parking: `backend::set_spin_hint`) at the number of granted claims here but
    /// the `brief` ones (a split command's part, after which only the release comes): a
    /// transaction holding this shard sends its next step or its release within
    /// microseconds, and a held-all script waits, thread blocked, for each of its
    /// calls here (measured: benches/README.md, "A shard held by a transaction watches
    /// before it parks").
    pub fn set_hint(&mut self, hint: std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        self.hint = Some(hint);
        self.publish();
    }

    /// Keep `flags[id]` at [`Intents::is_quiet`], for other cores to read (see
    /// `hop::QuietFlags`).
    pub fn publish_to(&mut self, flags: crate::runtime::hop::QuietFlags, id: usize) {
        self.quiet = Some((flags, id));
        self.publish();
    }

    /// Write the count of granted claims whose transactions send more work here (not
    /// `brief`) to `hint` and whether this shard is quiet where other cores read it;
    /// after every change to the granted claims or the parked work.
    fn publish(&self) {
        if let Some(h) = &self.hint {
            let watched = self.granted - self.granted_brief;
            h.store(watched, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some((flags, id)) = &self.quiet {
            let quiet = self.is_quiet();
            if flags[*id].load(std::sync::atomic::Ordering::Relaxed) != quiet {
                flags[*id].store(quiet, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    fn is_granted(&self, tx: u64) -> bool {
        self.requests.get(&tx).is_some_and(|r| r.on_grant.is_none())
    }

    /// True if no request is here, no key queue is left and nothing is parked.
    #[cfg(test)]
    fn is_idle(&self) -> bool {
        self.requests.is_empty()
            && self.keys.is_empty()
            && self.wholes.is_empty()
            && self.parked.is_empty()
    }

    /// True if a granted claim covers `key`.
    pub fn holds_key(&self, key: &[u8]) -> bool {
        self.granted > 0
            && (self.granted_whole > 0
                || self
                    .keys
                    .get(key)
                    .and_then(|q| q.front())
                    .is_some_and(|&t| self.is_granted(t)))
    }

    /// True if a granted claim covers `fp`.
    fn claimed(&self, fp: &Footprint) -> bool {
        match fp {
            Footprint::Shard => self.granted > 0,
            Footprint::Keys(ks) => self.granted_whole > 0 || ks.iter().any(|k| self.holds_key(k)),
        }
    }

    /// True if nothing is claimed, queued or parked here: a claim requested now is
    /// granted at once.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.parked.is_empty()
    }

    /// True if no work has to wait here now: nothing granted, nothing parked.
    pub fn is_quiet(&self) -> bool {
        self.granted == 0 && self.parked.is_empty()
    }

    /// True if work of `tx` (None: ordinary work) covering `fp` must wait now. A
    /// granted transaction's own work never waits (parked work may be waiting for it);
    /// other work waits for the granted claims it meets and for the parked work it
    /// overlaps, which came first.
    pub fn blocks(&self, tx: Option<u64>, fp: &Footprint) -> bool {
        !self.lets_pass(tx) && self.meets(fp)
    }

    /// `blocks`, with the footprint worked out only when some claim or parked work is
    /// here (a command's keys, on the hot path).
    pub fn blocks_with(&self, tx: Option<u64>, fp: impl FnOnce() -> Footprint) -> bool {
        !self.lets_pass(tx) && self.meets(&fp())
    }

    /// True if work of `tx` runs whatever it touches.
    fn lets_pass(&self, tx: Option<u64>) -> bool {
        self.is_quiet() || tx.is_some_and(|t| self.is_granted(t))
    }

    /// True if a granted claim or parked work meets `fp`.
    fn meets(&self, fp: &Footprint) -> bool {
        self.claimed(fp) || self.parked.iter().any(|p| p.footprint.overlaps(fp))
    }

    /// Remove `tx` from everything it queues in; returns the requests whose last
    /// obstacle that was.
    fn leave(&mut self, tx: u64) -> Vec<u64> {
        let Some(r) = self.requests.remove(&tx) else {
            return Vec::new();
        };
        if r.on_grant.is_none() {
            self.granted -= 1;
            self.granted_brief -= usize::from(r.brief);
            if r.claim == Footprint::Shard {
                self.granted_whole -= 1;
            }
            self.publish();
        }
        let mut fronts = Vec::new();
        let mut unqueue = |q: &mut VecDeque<u64>| {
            if let Some(at) = q.iter().position(|&t| t == tx) {
                q.remove(at);
                if at == 0 {
                    fronts.extend(q.front().copied());
                }
            }
        };
        match &r.claim {
            Footprint::Keys(ks) => {
                for k in ks {
                    if let Some(q) = self.keys.get_mut(k) {
                        unqueue(q);
                        if q.is_empty() {
                            self.keys.remove(k);
                        }
                    }
                }
                // Every whole-shard request after it counted it.
                fronts.extend(
                    self.wholes
                        .iter()
                        .filter(|(seq, _)| *seq > r.seq)
                        .map(|&(_, t)| t),
                );
            }
            Footprint::Shard => {
                self.wholes.retain(|&(_, t)| t != tx);
                // Every request after it counted it.
                fronts.extend(
                    self.requests
                        .iter()
                        .filter(|(_, o)| o.seq > r.seq)
                        .map(|(&t, _)| t),
                );
            }
        }
        self.lift(fronts)
    }

    /// Take one obstacle off each of `txs`; returns those left with none, oldest first.
    fn lift(&mut self, txs: Vec<u64>) -> Vec<u64> {
        let mut ready = Vec::new();
        for t in txs {
            if let Some(r) = self.requests.get_mut(&t) {
                r.obstacles -= 1;
                if r.obstacles == 0 {
                    ready.push((r.seq, t));
                }
            }
        }
        ready.sort_unstable();
        ready.into_iter().map(|(_, t)| t).collect()
    }

    /// Queue a request; true if it has no obstacle.
    fn enqueue(&mut self, tx: u64, claim: Footprint, on_grant: OnGrant, brief: bool) -> bool {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut obstacles = 0;
        match &claim {
            Footprint::Keys(ks) => {
                obstacles += self.wholes.len();
                for k in ks {
                    let q = self.keys.entry(k.clone()).or_default();
                    obstacles += usize::from(!q.is_empty());
                    q.push_back(tx);
                }
            }
            Footprint::Shard => {
                obstacles += self.requests.len();
                self.wholes.push((seq, tx));
            }
        }
        for p in self.parked.iter_mut() {
            if p.footprint.overlaps(&claim) {
                p.holds_back.push(tx);
                obstacles += 1;
            }
        }
        self.requests.insert(
            tx,
            Request {
                seq,
                claim,
                obstacles,
                on_grant: Some(on_grant),
                brief,
            },
        );
        obstacles == 0
    }

    /// Mark `tx` granted and hand back what it runs on grant.
    fn grant(&mut self, tx: u64) -> Option<OnGrant> {
        let r = self.requests.get_mut(&tx)?;
        let on_grant = r.on_grant.take()?;
        self.granted += 1;
        self.granted_brief += usize::from(r.brief);
        if r.claim == Footprint::Shard {
            self.granted_whole += 1;
        }
        self.publish();
        Some(on_grant)
    }

    /// Add `keys` to granted transaction `tx`'s claim here (a claim of its own if it
    /// has none yet), if that needs no wait: no
    /// request for any of them is queued, no whole-shard request is here, and no
    /// parked work overlaps them. True if they are `tx`'s now. (A script holding its
    /// declared keys that reaches another: see `scripting::run`. It never waits, so
    /// it cannot close a cycle of waits.)
    pub fn try_claim(&mut self, tx: u64, keys: &[Bytes]) -> bool {
        match self.requests.get(&tx) {
            Some(r) if r.on_grant.is_some() => return false,
            Some(r) if r.claim == Footprint::Shard => return true,
            _ => {}
        }
        let free = |k: &Bytes| self.keys.get(k).is_none_or(|q| q.iter().all(|&t| t == tx));
        let wanted = Footprint::Keys(keys.to_vec());
        if !self.wholes.is_empty()
            || !keys.iter().all(free)
            || self.parked.iter().any(|p| p.footprint.overlaps(&wanted))
        {
            return false;
        }
        let mut added = Vec::new();
        for k in keys {
            let q = self.keys.entry(k.clone()).or_default();
            if q.is_empty() {
                q.push_back(tx);
                added.push(k.clone());
            }
        }
        match self.requests.get_mut(&tx) {
            Some(r) => {
                if let Footprint::Keys(ks) = &mut r.claim {
                    ks.extend(added);
                }
            }
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                let request = Request {
                    seq,
                    claim: Footprint::Keys(added),
                    obstacles: 0,
                    on_grant: None,
                    brief: false,
                };
                self.requests.insert(tx, request);
                self.granted += 1;
                self.publish();
            }
        }
        true
    }

    /// Park work that must wait.
    pub fn park(&mut self, tx: Option<u64>, footprint: Footprint, run: Deferred) {
        self.parked.push_back(Parked {
            tx,
            footprint,
            run,
            holds_back: Vec::new(),
        });
        self.publish();
    }

    /// The first parked work that may run now, out of the queue.
    fn next_runnable(&mut self) -> Option<Parked> {
        let at = (0..self.parked.len()).find(|&i| {
            let p = &self.parked[i];
            p.tx.is_some_and(|t| self.is_granted(t))
                || (!self.claimed(&p.footprint)
                    && !self
                        .parked
                        .iter()
                        .take(i)
                        .any(|e| e.footprint.overlaps(&p.footprint)))
        })?;
        let next = self.parked.remove(at);
        self.publish();
        next
    }
}

impl Shard {
    /// Queue transaction `tx`'s request for `claim`; `on_grant` runs as soon as it is
    /// granted, now if nothing conflicts.
    pub fn request(&mut self, tx: u64, claim: Footprint, on_grant: OnGrant) {
        self.request_as(tx, claim, on_grant, false)
    }

    /// [`Shard::request`], `brief` when the transaction will send this shard nothing
    /// but its release once granted (see `Request::brief`).
    pub fn request_as(&mut self, tx: u64, claim: Footprint, on_grant: OnGrant, brief: bool) {
        if self.intents.enqueue(tx, claim, on_grant, brief) {
            self.grant_all(vec![tx]);
        }
    }

    /// Release `tx`'s claim (or withdraw its request, not granted yet): run the parked
    /// work it held up, then grant the requests it was the last obstacle of.
    pub fn release(&mut self, tx: u64) {
        let mut ready = self.intents.leave(tx);
        while let Some(p) = self.intents.next_runnable() {
            (p.run)(self);
            ready.extend(self.intents.lift(p.holds_back));
        }
        self.grant_all(ready);
    }

    fn grant_all(&mut self, txs: Vec<u64>) {
        for t in txs {
            if let Some(on_grant) = self.intents.grant(t) {
                on_grant(self);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn keys(ks: &[&str]) -> Footprint {
        Footprint::keys(ks.iter().map(|k| Bytes::from(k.to_string())).collect())
    }

    /// A shard and a log of what ran on it, in order.
    fn shard() -> (Shard, Arc<Mutex<Vec<String>>>) {
        let config = crate::config::ConfigHandle::new(crate::config::Config::default());
        (Shard::new(0, 1, config), Arc::default())
    }

    fn note(log: &Arc<Mutex<Vec<String>>>, what: &str) -> Box<dyn FnOnce(&mut Shard) + Send> {
        let (log, what) = (log.clone(), what.to_string());
        Box::new(move |_| log.lock().unwrap().push(what))
    }

    fn ran(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        std::mem::take(&mut log.lock().unwrap())
    }

    #[test]
    fn brief_claims_are_not_watched_for() {
        // The hint makes an idle core watch for a transaction's next step before it
        // parks; a split command's part sends nothing after its grant but the release.
        let (mut s, _) = shard();
        let hint = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        s.intents.set_hint(hint.clone());
        let watched = || hint.load(std::sync::atomic::Ordering::Relaxed);
        s.request_as(1, keys(&["a"]), Box::new(|_| {}), true);
        assert_eq!(watched(), 0, "a brief claim is granted but not watched for");
        s.request(2, keys(&["b"]), Box::new(|_| {}));
        assert_eq!(watched(), 1);
        s.request_as(3, keys(&["a"]), Box::new(|_| {}), true);
        assert_eq!(watched(), 1, "queued, not granted");
        s.release(1);
        assert_eq!(watched(), 1, "3 granted, brief");
        s.release(2);
        assert_eq!(watched(), 0);
        s.release(3);
        assert_eq!((s.intents.granted, s.intents.granted_brief), (0, 0));
    }

    #[test]
    fn disjoint_claims_are_granted_together_and_common_keys_queue() {
        let (mut s, log) = shard();
        s.request(1, keys(&["a", "b"]), note(&log, "1"));
        s.request(2, keys(&["c"]), note(&log, "2"));
        s.request(3, keys(&["b", "c"]), note(&log, "3"));
        s.request(4, keys(&["d"]), note(&log, "4"));
        assert_eq!(ran(&log), ["1", "2", "4"]);
        s.release(1);
        assert!(ran(&log).is_empty(), "3 still waits for 2 on c");
        s.release(2);
        assert_eq!(ran(&log), ["3"]);
    }

    #[test]
    fn a_whole_shard_claim_waits_for_everything_before_and_holds_everything_after() {
        let (mut s, log) = shard();
        s.request(1, keys(&["a"]), note(&log, "1"));
        s.request(2, Footprint::Shard, note(&log, "2"));
        s.request(3, keys(&["z"]), note(&log, "3"));
        assert_eq!(ran(&log), ["1"]);
        assert!(s.intents.blocks(None, &keys(&["a"])));
        assert!(
            !s.intents.blocks(None, &keys(&["z"])),
            "2 is not granted yet"
        );
        s.release(1);
        assert_eq!(ran(&log), ["2"]);
        assert!(s.intents.blocks(None, &keys(&["z"])));
        assert!(!s.intents.blocks(Some(2), &Footprint::Shard));
        s.release(2);
        assert_eq!(ran(&log), ["3"]);
    }

    #[test]
    fn parked_work_runs_at_release_before_later_requests_and_in_order() {
        let (mut s, log) = shard();
        s.request(1, keys(&["a"]), note(&log, "t1"));
        ran(&log);
        assert!(s.intents.blocks(None, &keys(&["a"])));
        s.intents.park(None, keys(&["a"]), note(&log, "n1"));
        // Not covered by a claim, but behind parked work it overlaps.
        assert!(s.intents.blocks(None, &keys(&["a", "q"])));
        assert!(!s.intents.blocks(None, &keys(&["q"])));
        s.intents.park(None, keys(&["a", "q"]), note(&log, "n2"));
        s.request(2, keys(&["q"]), note(&log, "t2"));
        assert!(ran(&log).is_empty(), "2 is held back by the parked n2");
        s.release(1);
        assert_eq!(ran(&log), ["n1", "n2", "t2"]);
    }

    #[test]
    fn the_published_flag_says_quiet_exactly_when_nothing_is_granted_or_parked() {
        use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
        let (mut s, log) = shard();
        let flags: crate::runtime::hop::QuietFlags = Arc::new(vec![AtomicBool::new(false)]);
        s.intents.publish_to(flags.clone(), 0);
        let quiet = || flags[0].load(Relaxed);
        assert!(quiet());
        s.request(1, keys(&["a"]), note(&log, "t1"));
        assert!(!quiet(), "a claim is granted");
        s.request(2, keys(&["a"]), note(&log, "t2"));
        s.intents.park(None, keys(&["a"]), note(&log, "n1"));
        s.release(1);
        // n1 ran at the release; 2 is granted now.
        assert_eq!(ran(&log), ["t1", "n1", "t2"]);
        assert!(!quiet());
        s.release(2);
        assert!(quiet());
        // Work parked behind a claim keeps the shard from being quiet until it has run.
        s.request(3, keys(&["b"]), note(&log, "t3"));
        s.intents.park(None, keys(&["b"]), note(&log, "n2"));
        assert!(!quiet());
        s.release(3);
        assert_eq!(ran(&log), ["t3", "n2"]);
        assert!(quiet());
        assert_eq!(quiet(), s.intents.is_quiet());
    }

    #[test]
    fn a_granted_claim_takes_more_keys_only_where_nothing_waits() {
        let (mut s, log) = shard();
        let b = |k: &str| Bytes::from(k.to_string());
        s.request(1, keys(&["a"]), note(&log, "1"));
        s.request(2, keys(&["b"]), note(&log, "2"));
        s.request(3, keys(&["b", "c"]), note(&log, "3"));
        assert_eq!(ran(&log), ["1", "2"]);
        assert!(!s.intents.try_claim(1, &[b("b")]), "2 holds b");
        assert!(!s.intents.try_claim(1, &[b("c")]), "3 waits for c");
        assert!(!s.intents.try_claim(3, &[b("d")]), "3 is not granted");
        assert!(s.intents.try_claim(1, &[b("d"), b("a"), b("d")]));
        assert!(s.intents.blocks(None, &keys(&["d"])));
        // A transaction with no claim here gets one.
        assert!(s.intents.try_claim(7, &[b("e")]));
        assert!(s.intents.blocks(None, &keys(&["e"])));
        assert!(!s.intents.blocks(Some(7), &keys(&["e"])));
        s.intents.park(None, keys(&["f"]), note(&log, "n"));
        s.release(7);
        assert_eq!(ran(&log), ["n"]);
        s.intents.park(None, keys(&["d", "g"]), note(&log, "p"));
        assert!(
            !s.intents.try_claim(1, &[b("g")]),
            "parked work comes first"
        );
        s.release(1);
        assert_eq!(ran(&log), ["p"]);
        assert!(
            !s.intents.blocks(None, &keys(&["d"])),
            "released with the rest"
        );
        s.release(2);
        assert_eq!(ran(&log), ["3"]);
        s.release(3);
        assert!(s.intents.is_idle());
    }

    #[test]
    fn a_withdrawn_request_is_never_granted_and_frees_those_behind() {
        let (mut s, log) = shard();
        s.request(1, keys(&["a"]), note(&log, "1"));
        s.request(2, keys(&["a", "b"]), note(&log, "2"));
        s.request(3, keys(&["b"]), note(&log, "3"));
        assert_eq!(ran(&log), ["1"]);
        s.release(2);
        assert_eq!(ran(&log), ["3"]);
        s.release(1);
        assert!(ran(&log).is_empty());
        s.release(3);
        assert!(s.intents.is_idle(), "nothing is left queued");
    }
}
