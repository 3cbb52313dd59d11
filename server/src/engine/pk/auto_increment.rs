//! Auto-increment ids of a primary-key table: unique and strictly increasing per table, across
//! buckets and restarts.
//!
//! Ids are handed out from a range reserved on disk before use: the file `auto_increment`
//! (envelope: magic, version, length, CRC) holds the end of the reserved range, written tmp +
//! fsync + rename. After a crash the next id starts at the reserved end, so an id is never
//! handed out twice, at the price of a gap of at most one range. The ids a crash assigned but
//! did not persist are in the changelog, and every one of them is below the reserved end.

use crate::error::{Error, Result};
use crate::fs::{self, FileSystem};
use arrow_schema::DataType;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 4] = b"STRA";
const VERSION: u16 = 1;
const FILE: &str = "auto_increment";
/// Ids reserved per fsync.
const RESERVE: i64 = 10_000;

pub struct AutoIncrement {
    pub column: usize,
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    max: i64,
    /// (next id, end of the reserved range).
    state: Mutex<(i64, i64)>,
}

impl AutoIncrement {
    pub fn open(fs: Arc<dyn FileSystem>, table_dir: &Path, column: usize, data_type: &DataType) -> Result<Self> {
        fs::create_dir_all_durable(fs.as_ref(), table_dir)?;
        let path = table_dir.join(FILE);
        let reserved = match fs.read(&path) {
            Ok(bytes) => {
                let (_, body) = fs::open_envelope(&path, MAGIC, VERSION, &bytes)?;
                let raw: [u8; 8] = body.try_into().map_err(|_| Error::DataLoss {
                    location: path.display().to_string(),
                    detail: format!("{} bytes instead of 8", body.len()),
                })?;
                i64::from_le_bytes(raw)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
            Err(e) => return Err(Error::io(path.display(), e)),
        };
        let max = if *data_type == DataType::Int32 { i32::MAX as i64 } else { i64::MAX };
        Ok(Self { column, fs, path, max, state: Mutex::new((reserved, reserved)) })
    }

    /// Takes `count` consecutive ids for one batch, reserving a new range on disk first when
    /// the current one does not hold them (the only place that fsyncs). Called before the
    /// batch takes its buckets' locks, so no lock is held across that fsync; ids the batch
    /// does not use go back with [`IdLease::release`] when nobody took ids after them.
    pub fn lease(&self, count: usize) -> Result<IdLease> {
        let count = count as i64;
        let mut state = self.state.lock();
        let (next, reserved) = *state;
        if next.saturating_add(count) > self.max.saturating_add(1) {
            return Err(Error::invalid(format!(
                "auto-increment column is exhausted: ids {next}..{} exceed {}",
                next.saturating_add(count),
                self.max
            )));
        }
        if next + count > reserved {
            let end = (next + count).saturating_add(RESERVE);
            fs::write_atomic(self.fs.as_ref(), &self.path, &fs::envelope(MAGIC, VERSION, &end.to_le_bytes()))?;
            state.1 = end;
        }
        state.0 = next + count;
        Ok(IdLease { next, end: next + count })
    }

    /// The next id (a lease of one).
    #[cfg(test)]
    pub fn next_id(&self) -> Result<i64> {
        Ok(self.lease(1)?.next().expect("a lease of one id"))
    }

    /// Gives back the unused ids of `lease` when they are the last ones handed out.
    pub fn release(&self, lease: IdLease) {
        let mut state = self.state.lock();
        if state.0 == lease.end {
            state.0 = lease.next;
        }
    }
}

/// Ids taken for one batch: handed out in order while it is merged.
#[derive(Debug)]
pub struct IdLease {
    next: i64,
    end: i64,
}

impl IdLease {
    /// A lease of no ids (tables without an auto-increment column, deletes).
    pub fn empty() -> Self {
        Self { next: 0, end: 0 }
    }

    pub fn next(&mut self) -> Option<i64> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real() -> Arc<dyn FileSystem> {
        Arc::new(crate::fs::RealFs::new())
    }

    #[test]
    fn given_reopened_allocator_when_ids_are_taken_should_stay_strictly_increasing() {
        let dir = tempfile::tempdir().unwrap();
        let a = AutoIncrement::open(real(), dir.path(), 1, &DataType::Int64).unwrap();
        let first: Vec<i64> = (0..5).map(|_| a.next_id().unwrap()).collect();
        assert_eq!(first, vec![1, 2, 3, 4, 5]);
        drop(a);
        let b = AutoIncrement::open(real(), dir.path(), 1, &DataType::Int64).unwrap();
        let next = b.next_id().unwrap();
        assert!(next > 5, "after a restart ids continue above every id handed out before: {next}");
        assert!(b.next_id().unwrap() > next);
    }

    #[test]
    fn given_leases_when_unused_ids_are_released_should_hand_them_out_again_only_if_last() {
        let dir = tempfile::tempdir().unwrap();
        let a = AutoIncrement::open(real(), dir.path(), 1, &DataType::Int64).unwrap();
        let mut first = a.lease(3).unwrap();
        assert_eq!(first.next(), Some(1));
        a.release(first);
        assert_eq!(a.next_id().unwrap(), 2, "the two unused ids came back");
        let held = a.lease(2).unwrap();
        let _later = a.lease(1).unwrap();
        a.release(held);
        assert_eq!(a.next_id().unwrap(), 6, "ids after a later lease are not reused");
        a.lease(RESERVE as usize + 5).unwrap();
        drop(a);
        let b = AutoIncrement::open(real(), dir.path(), 1, &DataType::Int64).unwrap();
        assert!(b.next_id().unwrap() >= 7 + RESERVE + 5, "a lease larger than one range is reserved on disk whole");
    }

    #[test]
    fn given_damaged_file_when_opened_should_report_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = AutoIncrement::open(real(), dir.path(), 1, &DataType::Int64).unwrap();
        a.next_id().unwrap();
        let path = dir.path().join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        std::fs::write(&path, bytes).unwrap();
        assert!(AutoIncrement::open(real(), dir.path(), 1, &DataType::Int64).is_err());
    }
}
