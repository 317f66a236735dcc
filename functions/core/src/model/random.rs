//! The platform's randomness, from the operating system (`getrandom`), not from aws-lc's
//! generator: aws-lc seeds its generator on first use from CPU jitter, which took about
//! 50 ms of the API function's cold start (an id generator asks for 8 random bytes at
//! start). The kernel's generator is a CSPRNG too, and costs nothing at start.
//!
//! Keys, nonces and generated secrets take their bytes straight from it
//! ([`random_bytes`]); ids and retry jitter ([`random_id`], [`random_u64`]) take theirs from
//! a per-thread pool of its output, refilled 512 bytes at a time, so a busy process makes
//! one system call per 32 ids instead of one each. Bytes handed out are wiped from the
//! pool.

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the system random source failed");
}

const POOL_BYTES: usize = 512;

/// Fills `out` (at most [`POOL_BYTES`]) from this thread's pool of the operating system's
/// random bytes, refilling it when it runs short. For ids and jitter, not for keys.
fn pooled_random_bytes(out: &mut [u8]) {
    use std::cell::RefCell;
    thread_local! {
        static POOL: RefCell<([u8; POOL_BYTES], usize)> =
            const { RefCell::new(([0; POOL_BYTES], POOL_BYTES)) };
    }
    debug_assert!(out.len() <= POOL_BYTES);
    POOL.with_borrow_mut(|(pool, used)| {
        if POOL_BYTES - *used < out.len() {
            random_bytes(pool);
            *used = 0;
        }
        let taken = &mut pool[*used..*used + out.len()];
        out.copy_from_slice(taken);
        taken.fill(0);
        *used += out.len();
    });
}

/// `prefix` and 32 random hex characters (event uids `evt_…`, dispatch ids `msg_…`,
/// fan-out attempts `att_…`).
pub fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    pooled_random_bytes(&mut bytes);
    format!("{prefix}{:032x}", u128::from_be_bytes(bytes))
}

pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    pooled_random_bytes(&mut b);
    u64::from_le_bytes(b)
}

/// A number uniform in [0, 1), from [`random_u64`].
pub fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_ids_never_repeat_across_refills_and_threads() {
        let draw = || {
            (0..200)
                .flat_map(|_| [random_id("evt_"), format!("{:016x}", random_u64())])
                .collect::<Vec<_>>()
        };
        let other = std::thread::spawn(draw);
        let mut all = draw();
        all.extend(other.join().unwrap());
        assert!(
            all.iter()
                .filter(|id| id.starts_with("evt_"))
                .all(|id| { id.len() == 36 && id[4..].bytes().all(|b| b.is_ascii_hexdigit()) })
        );
        let distinct: std::collections::HashSet<&String> = all.iter().collect();
        // 400 draws a thread use 4,800 bytes: the pool (512) is refilled several times.
        assert_eq!(
            distinct.len(),
            all.len(),
            "an id or a jitter value repeated"
        );
    }
}
