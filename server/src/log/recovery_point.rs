//! The recovery point of a bucket: how many bytes of which segment an fdatasync has covered.
//!
//! A power loss can leave garbage or zeros *inside* the never-synced bytes of a segment with
//! intact entries after them (dirty pages reach the disk in any order), and a bit flipped in
//! synced bytes looks the same. With only the segment to go by, recovery cannot tell the two
//! apart. The recovery point can: damage below it is in bytes an fdatasync covered — corruption,
//! served as `DATA_LOSS` — and damage at or above it is in bytes no acknowledgement depended on,
//! so the tail is cut from there (Kafka checkpoints a recovery point for the same reason).
//!
//! The point is rewritten in place after every group commit, **without** an fsync of its own (a
//! group commit must not pay a second one). A power loss can therefore leave it stale, torn or
//! empty; every one of those errs towards cutting, never towards refusing what was never
//! acknowledged:
//! - stale: every point once written stays true (segment bytes below the synced size are never
//!   rewritten, and recovery cuts only above the point), it just covers less;
//! - torn or garbage: the envelope's CRC fails and the point is unknown;
//! - unknown (missing, torn, naming another segment): damage in a segment whose tail may be torn
//!   is taken for a torn write and cut. Bit rot in synced bytes of the active segment is then
//!   cut too (logged as an error) instead of being served as `DATA_LOSS`: the price of not
//!   fsyncing the point.
//!
//! The file's directory entry is made durable once, when the bucket first creates it.

use crate::error::{IoContext, Result};
use crate::fs::{self, FileSystem, FsFile, OpenMode};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"STRP";
const VERSION: u16 = 1;
pub const FILE_NAME: &str = "recovery.point";

/// `synced_bytes` of the segment starting at `segment_base` were covered by an fdatasync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryPoint {
    pub segment_base: u64,
    pub synced_bytes: u64,
}

impl RecoveryPoint {
    fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(16);
        body.extend_from_slice(&self.segment_base.to_le_bytes());
        body.extend_from_slice(&self.synced_bytes.to_le_bytes());
        // Always the same length, so an in-place rewrite never leaves an older, longer tail.
        fs::envelope(MAGIC, VERSION, &body)
    }

    /// The synced byte count of the segment at `base`, if the point names it.
    pub fn synced_bytes_of(point: Option<RecoveryPoint>, base: u64) -> u64 {
        point.filter(|p| p.segment_base == base).map_or(0, |p| p.synced_bytes)
    }
}

/// Reads the point a bucket recorded; `None` (logged) when it is missing or unusable.
pub fn read(fs: &dyn FileSystem, dir: &Path, location: &str) -> Option<RecoveryPoint> {
    let path = dir.join(FILE_NAME);
    let bytes = match fs.read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(bucket = %location, error = %e, "recovery point unreadable: damage in the active segment will be cut as a torn tail");
            return None;
        }
    };
    let decoded = fs::open_envelope(&path, MAGIC, VERSION, &bytes).and_then(|(_, body)| {
        let u64_at = |i: usize| body.get(i..i + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        match (u64_at(0), u64_at(8)) {
            (Some(segment_base), Some(synced_bytes)) => Ok(RecoveryPoint { segment_base, synced_bytes }),
            _ => Err(crate::error::Error::FileTooSmall { location: path.display().to_string(), expected: 16, actual: body.len() as u64 }),
        }
    });
    match decoded {
        Ok(point) => Some(point),
        Err(e) => {
            // Expected after a power loss cut its last unsynced rewrite.
            tracing::warn!(bucket = %location, error = %e, "recovery point unusable: damage in the active segment will be cut as a torn tail");
            None
        }
    }
}

/// The open point file of a bucket, rewritten after each group commit.
#[derive(Debug)]
pub struct RecoveryPointFile {
    path: PathBuf,
    file: Box<dyn FsFile>,
}

impl RecoveryPointFile {
    /// Opens the bucket's point file, creating it (with a durable directory entry) if missing.
    pub fn open(fs: &dyn FileSystem, dir: &Path) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        let file = match fs.open(&path, OpenMode::Existing) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let file = fs.open(&path, OpenMode::CreateNew).at(path.display())?;
                // Once per bucket: later rewrites need no directory fsync to be found.
                fs::sync_dir(fs, dir)?;
                file
            }
            Err(e) => return Err(crate::error::Error::io(path.display(), e)),
        };
        Ok(Self { path, file })
    }

    /// Records `point` with a pwrite and no fsync (see the module doc for why that is enough).
    /// Never fails the caller: a point that cannot be written only makes recovery more lenient.
    pub fn record_unsynced(&self, point: RecoveryPoint) {
        if let Err(e) = self.file.write_all_at(&point.encode(), 0) {
            tracing::warn!(file = %self.path.display(), error = %e, "could not record the recovery point");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::RealFs;

    #[test]
    fn given_recorded_point_when_read_should_return_it_and_a_damaged_one_should_read_as_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs;
        assert_eq!(read(&fs, dir.path(), "t"), None, "no file yet");
        let file = RecoveryPointFile::open(&fs, dir.path()).unwrap();
        let point = RecoveryPoint { segment_base: 72, synced_bytes: 1544 };
        file.record_unsynced(point);
        assert_eq!(read(&fs, dir.path(), "t"), Some(point));
        file.record_unsynced(RecoveryPoint { segment_base: 72, synced_bytes: 2528 });
        assert_eq!(RecoveryPoint::synced_bytes_of(read(&fs, dir.path(), "t"), 72), 2528);
        assert_eq!(RecoveryPoint::synced_bytes_of(read(&fs, dir.path(), "t"), 80), 0, "a point names one segment");
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(&fs, dir.path(), "t"), None, "a torn point is unknown, not trusted");
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert_eq!(read(&fs, dir.path(), "t"), None, "a short point is unknown");
    }
}
