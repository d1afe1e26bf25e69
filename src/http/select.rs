//! Choosing a worker: each algorithm orders the eligible workers by
//! preference, and the caller takes the first one that has a free slot, so
//! retries and full workers fall through to the next choice. Eligibility
//! (health, drain, maintenance) is decided by the caller, never here.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

use crate::config::Balance;

/// What a selector may look at for one worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct Candidate {
    /// Index of the worker in the configured list.
    pub idx: usize,
    pub weight: u32,
    /// Requests in flight to it now.
    pub active: usize,
}

/// Orders candidates by preference (first = best).
pub trait Selector: Send + Sync {
    fn order(&self, candidates: &mut [Candidate]);

    /// The worker to try first when nothing narrows the choice (no sticky
    /// cookie, no failed attempt), if the selector can name it without
    /// looking at the others: it saves gathering and ordering candidates
    /// on every request. `None` means: order the candidates.
    fn first(&self) -> Option<usize> {
        None
    }
}

/// Builds the selector configured by `balance`.
pub fn selector(balance: Balance, weights: &[u32]) -> Box<dyn Selector> {
    match balance {
        Balance::Roundrobin => Box::new(RoundRobin::new(weights)),
        Balance::Leastconn => Box::new(LeastConn::default()),
        Balance::Random2 => Box::new(Random2),
    }
}

/// Weighted round-robin over a precomputed schedule, interleaved the way
/// nginx's smooth weighted round-robin interleaves (weights 2:1 give
/// a, b, a rather than a, a, b). One atomic increment per pick, no lock.
pub struct RoundRobin {
    schedule: Vec<usize>,
    next: AtomicUsize,
}

/// Up to this many candidates, ordering allocates nothing.
const SMALL: usize = 8;

/// Longest schedule we build; weights are scaled down by their gcd first.
const MAX_SCHEDULE: usize = 1_000;

impl RoundRobin {
    pub fn new(weights: &[u32]) -> Self {
        let g = weights
            .iter()
            .copied()
            .filter(|w| *w > 0)
            .fold(0u32, gcd)
            .max(1);
        let mut w: Vec<i64> = weights.iter().map(|x| i64::from(x / g)).collect();
        let total: i64 = w.iter().sum();
        if total as usize > MAX_SCHEDULE {
            // Keep proportions approximately; every positive weight keeps ≥ 1.
            let scale = total as f64 / MAX_SCHEDULE as f64;
            for x in w.iter_mut().filter(|x| **x > 0) {
                *x = ((*x as f64 / scale).round() as i64).max(1);
            }
        }
        let total: i64 = w.iter().sum();
        let mut current = vec![0i64; w.len()];
        let mut schedule = Vec::with_capacity(total as usize);
        for _ in 0..total {
            for (c, wi) in current.iter_mut().zip(&w) {
                *c += wi;
            }
            let Some(best) = (0..w.len())
                .filter(|i| w[*i] > 0)
                .max_by_key(|i| (current[*i], -(*i as i64)))
            else {
                break;
            };
            current[best] -= total;
            schedule.push(best);
        }
        RoundRobin {
            schedule,
            next: AtomicUsize::new(0),
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Selector for RoundRobin {
    fn first(&self) -> Option<usize> {
        if self.schedule.is_empty() {
            return None;
        }
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.schedule.len();
        self.schedule.get(at).copied()
    }

    fn order(&self, candidates: &mut [Candidate]) {
        if self.schedule.is_empty() || candidates.is_empty() {
            return;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % self.schedule.len();
        // Rank = first position in the schedule at or after `start`; a
        // worker absent from the schedule (weight 0) goes last.
        let len = self.schedule.len();
        let rank = |idx: usize| {
            (0..len)
                .find(|k| self.schedule[(start + k) % len] == idx)
                .unwrap_or(len)
        };
        if candidates.len() <= SMALL {
            // Ranks computed once, sorted on the stack.
            let mut keyed = [(0usize, Candidate::default()); SMALL];
            let keyed = &mut keyed[..candidates.len()];
            for (k, c) in keyed.iter_mut().zip(candidates.iter()) {
                *k = (rank(c.idx), *c);
            }
            // Ranks are distinct for workers in the schedule.
            keyed.sort_unstable_by_key(|(r, _)| *r);
            for (c, (_, k)) in candidates.iter_mut().zip(keyed.iter()) {
                *c = *k;
            }
        } else {
            candidates.sort_by_cached_key(|c| rank(c.idx));
        }
    }
}

/// Fewest in-flight requests per unit of weight; ties rotate.
#[derive(Default)]
pub struct LeastConn {
    tie: AtomicUsize,
}

fn load(c: &Candidate) -> u64 {
    // Scaled so that integer comparison respects weights.
    (c.active as u64 + 1) * 1_000_000 / u64::from(c.weight.max(1))
}

impl Selector for LeastConn {
    fn order(&self, candidates: &mut [Candidate]) {
        let n = candidates.len().max(1);
        let t = self.tie.fetch_add(1, Ordering::Relaxed) % n;
        candidates.rotate_left(t % candidates.len().max(1));
        candidates.sort_by_key(load); // stable: rotation breaks ties
    }
}

/// Power of two choices: two random workers, the less loaded first.
pub struct Random2;

impl Selector for Random2 {
    fn order(&self, candidates: &mut [Candidate]) {
        let n = candidates.len();
        if n < 2 {
            return;
        }
        let mut rng = rand::rng();
        let a = rng.random_range(0..n);
        let mut b = rng.random_range(0..n - 1);
        if b >= a {
            b += 1;
        }
        let best = if load(&candidates[b]) < load(&candidates[a]) {
            b
        } else {
            a
        };
        candidates.swap(0, best);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(weights: &[u32], active: &[usize]) -> Vec<Candidate> {
        weights
            .iter()
            .zip(active)
            .enumerate()
            .map(|(idx, (w, a))| Candidate {
                idx,
                weight: *w,
                active: *a,
            })
            .collect()
    }

    fn firsts(s: &dyn Selector, weights: &[u32], n: usize) -> Vec<usize> {
        let mut count = vec![0; weights.len()];
        for _ in 0..n {
            let mut c = cands(weights, &vec![0; weights.len()]);
            s.order(&mut c);
            count[c[0].idx] += 1;
        }
        count
    }

    #[test]
    fn roundrobin_respects_weights_exactly() {
        let rr = RoundRobin::new(&[3, 1]);
        assert_eq!(firsts(&rr, &[3, 1], 1000), vec![750, 250]);
        let rr = RoundRobin::new(&[1, 1, 0]);
        assert_eq!(firsts(&rr, &[1, 1, 0], 1000), vec![500, 500, 0]);
    }

    #[test]
    fn roundrobin_names_its_first_choice_in_schedule_order() {
        let rr = RoundRobin::new(&[2, 1, 0]);
        let picks: Vec<Option<usize>> = (0..6).map(|_| rr.first()).collect();
        let (a, b) = (Some(0), Some(1));
        assert_eq!(picks, vec![a, b, a, a, b, a]);
        assert_eq!(
            LeastConn::default().first(),
            None,
            "leastconn must look at the loads"
        );
        assert_eq!(Random2.first(), None);
    }

    #[test]
    fn roundrobin_interleaves() {
        let rr = RoundRobin::new(&[2, 1]);
        assert_eq!(rr.schedule, vec![0, 1, 0]);
    }

    #[test]
    fn roundrobin_skips_missing_candidate() {
        let rr = RoundRobin::new(&[1, 1, 1]);
        for _ in 0..6 {
            let mut c = cands(&[1, 1, 1], &[0, 0, 0]);
            c.remove(1);
            rr.order(&mut c);
            assert_ne!(c[0].idx, 1);
            assert_eq!(c.len(), 2);
        }
    }

    #[test]
    fn leastconn_prefers_idle_and_weight() {
        let lc = LeastConn::default();
        let mut c = cands(&[1, 1], &[5, 0]);
        lc.order(&mut c);
        assert_eq!(c[0].idx, 1);
        let mut c = cands(&[4, 1], &[2, 1]);
        lc.order(&mut c);
        assert_eq!(
            c[0].idx, 0,
            "weight 4 with 2 in flight is lighter than weight 1 with 1"
        );
    }

    #[test]
    fn random2_never_picks_the_busier_of_two() {
        for _ in 0..200 {
            let mut c = cands(&[1, 1], &[9, 0]);
            Random2.order(&mut c);
            assert_eq!(c[0].idx, 1);
        }
    }
}
