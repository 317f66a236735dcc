//! A subscription's rate limit, as pure arithmetic on a second's counter (see
//! [`crate::ports::rate_limit`]): a batch takes a block of slots of the current second in
//! one step, and the counter after it says which of the block's jobs start now and when
//! the others come back.
//!
//! The counter counts every slot asked for in the second, those past the limit included:
//! a job past the limit holds a place in the line, `overshoot` = its position past the
//! limit, and comes back in the second its place falls in (`limit` places a second),
//! at least one second later. The limit holds whatever the line does; the line only
//! spreads the jobs put back so that fewer of them come back to a full second.

use std::time::Duration;

/// What a block of `wanted` slots got, given the counter `after` the block was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// The block's first slots within the limit: this many of its jobs start now.
    pub granted: u32,
    /// The position past the limit of the block's first job not granted.
    first_over: u64,
    limit: u32,
}

impl Block {
    /// A block of `wanted` slots, the counter being `after` once it was added, under a
    /// limit of `limit` per second.
    pub fn of(wanted: u32, after: u64, limit: u32) -> Self {
        let before = after.saturating_sub(u64::from(wanted));
        let free = u64::from(limit).saturating_sub(before);
        let granted = free.min(u64::from(wanted)) as u32;
        Self {
            granted,
            first_over: (before + u64::from(granted)).saturating_sub(u64::from(limit)),
            limit,
        }
    }

    /// How long the block's job number `i` (from 0), not granted, waits: the whole
    /// seconds to the second its place in the line falls in, at least one.
    pub fn wait(&self, i: u32) -> Duration {
        let over = self.first_over + u64::from(i.saturating_sub(self.granted));
        Duration::from_secs(1 + over / u64::from(self.limit.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_gets_the_slots_left_under_the_limit() {
        // The second's first block: all of it when it fits, the limit when not.
        assert_eq!(Block::of(3, 3, 5).granted, 3);
        assert_eq!(Block::of(10, 10, 5).granted, 5);
        // After others took 3: 2 left.
        assert_eq!(Block::of(10, 13, 5).granted, 2);
        // A full second: none, however the counter overshot.
        assert_eq!(Block::of(4, 9, 5).granted, 0);
        assert_eq!(Block::of(4, 1_000_000, 5).granted, 0);
        // Exactly to the limit.
        assert_eq!(Block::of(5, 5, 5).granted, 5);
        assert_eq!(Block::of(1, 6, 5).granted, 0);
        // A counter older than the block (the adapter never answers less): as if alone.
        assert_eq!(Block::of(4, 2, 5).granted, 4);
    }

    #[test]
    fn jobs_past_the_limit_wait_for_the_second_their_place_falls_in() {
        // 10 jobs, limit 5: 5 now, the next 5 the next second.
        let b = Block::of(10, 10, 5);
        assert_eq!(
            (5..10).map(|i| b.wait(i).as_secs()).collect::<Vec<_>>(),
            [1, 1, 1, 1, 1]
        );
        // Another instance's 10 after those: places 5 to 14 past the limit.
        let b = Block::of(10, 20, 5);
        assert_eq!(b.granted, 0);
        assert_eq!(
            (0..10).map(|i| b.wait(i).as_secs()).collect::<Vec<_>>(),
            [2, 2, 2, 2, 2, 3, 3, 3, 3, 3]
        );
        // Never less than a second, even at limit 1000.
        assert_eq!(Block::of(2, 1001, 1000).wait(1), Duration::from_secs(1));
    }
}
