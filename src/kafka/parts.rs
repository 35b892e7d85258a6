//! The assigned partitions' engines, shared between the stage and the rebalance callback, and
//! the checkpoints cut from them.

use std::collections::HashMap;
use std::sync::Arc;

use super::checkpoint;
use crate::clock::PartitionClock;
use crate::engine::Engine;
use crate::wallclock::wall_ms;

/// A partition: its engine, its clock and its checkpoint bookkeeping.
pub struct Part {
    pub engine: Engine,
    pub clock: PartitionClock,
    pub ckpt: Ckpt,
}

/// An input partition: (topic, partition).
pub type PartKey = (Arc<str>, i32);

/// The parts of the assigned partitions, shared with the rebalance callback (which
/// checkpoints a revoked partition before it leaves). Locked only for synchronous work, never
/// across an await.
pub type Engines = HashMap<PartKey, Part>;
pub type Shared = Arc<std::sync::Mutex<Engines>>;

pub fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Engines> {
    // a panic while holding it would have ended the run; the data is still consistent
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Checkpoint bookkeeping of one partition: the next epoch and when the last one was taken.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ckpt {
    pub epoch: u64,
    pub at: i64,
}

/// A checkpoint ready to send: its partition, the input offset it reflects and its records.
pub struct CheckpointWrite {
    pub key: PartKey,
    pub offset: i64,
    pub records: Vec<(String, Vec<u8>)>,
}

/// Snapshots a partition (if it consumed anything) into checkpoint records; advances its epoch.
pub fn take_checkpoint(key: &PartKey, part: &mut Part) -> Option<CheckpointWrite> {
    let offset = part.clock.last_offset()?;
    let snapshot = part.engine.snapshot();
    let records = checkpoint::records(&key.0, key.1, part.ckpt.epoch, offset, &snapshot);
    part.ckpt.epoch += 1;
    part.ckpt.at = wall_ms();
    Some(CheckpointWrite {
        key: key.clone(),
        offset,
        records,
    })
}
