//! The file-system seam: every file and directory operation of the node goes through a
//! [`FileSystem`], so tests can swap the real one ([`RealFs`]) for one that simulates power
//! loss ([`FaultFs`]) and check that every acknowledged write survives.
//!
//! The seam covers exactly what the node does with files: segment files (create-new, pwrite
//! appends, fdatasync, truncation of a torn tail, positional and memory-mapped reads), small
//! durable files (envelope, written tmp + fsync + rename + fsync of the directory), directory
//! listings and the removal of dropped tables. RocksDB's files do not go through it.
//!
//! Errors stay `std::io::Error` with their kinds intact (callers tolerate `NotFound` on
//! removal, for instance); the durable-small-file helpers add locations and typed errors.

pub mod fault;

pub use fault::{FaultFs, FileLoss, FileOutcome, LostOperation, PowerLossReport, SIMULATED_POWER_LOSS};

use crate::error::{Error, IoContext, Result};
use parking_lot::Mutex;
use std::ffi::OsString;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How [`FileSystem::open`] treats an existing or missing file. Every handle reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file; `AlreadyExists` if it exists (a new segment).
    CreateNew,
    /// Open an existing file; `NotFound` if it is missing (a segment at recovery).
    Existing,
    /// Create the file, or empty it if it exists (the tmp file of an atomic write).
    CreateOrTruncate,
}

/// A directory tree the node stores its files in.
pub trait FileSystem: Send + Sync + Debug {
    /// Creates `path` and its missing parents (`std::fs::create_dir_all`). The new entries are
    /// not durable until their parents are synced: see [`create_dir_all_durable`].
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// The names of the entries of a directory, in no particular order.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>>;

    /// The whole content of a (small) file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// Renames a file within its directory, replacing `to` if it exists. Durable after
    /// [`FileSystem::sync_dir`] of the directory.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file (`NotFound` if it is missing). Durable after `sync_dir` of its directory.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Removes a directory and everything in it. Durable after `sync_dir` of its parent.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;

    /// fsyncs a directory: the entries created, renamed or removed in it become durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    fn exists(&self, path: &Path) -> io::Result<bool>;
}

/// An open file. Positional I/O only, so one handle serves concurrent readers and a writer.
pub trait FsFile: Send + Sync + Debug {
    /// pwrite(2) of the whole buffer at `offset` (no fsync).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    fn len(&self) -> io::Result<u64>;

    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Truncates or extends the file (not durable until a sync).
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// fdatasync(2): the content and size written so far survive a power loss.
    fn sync_data(&self) -> io::Result<()>;

    /// fsync(2): as `sync_data`, plus the file's other metadata. The file's directory entry
    /// is durable only after `sync_dir` of its directory.
    fn sync_all(&self) -> io::Result<()>;

    /// A zero-copy view of `len` bytes at `position`, backed by a memory map of the file that
    /// the handle caches and remaps when a read reaches past it. The bytes must have been
    /// written and must never be rewritten or truncated while a view of them is alive.
    fn map_bytes(&self, position: u64, len: usize) -> io::Result<bytes::Bytes>;
}

/// Envelope header: magic (4) + version (u16) + reserved (u16) + body length (u64) + CRC32C (u32).
pub const ENVELOPE_HEADER_LEN: usize = 4 + 2 + 2 + 8 + 4;

/// Wraps `body` in the envelope.
pub fn envelope(magic: &[u8; 4], version: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Checks the envelope and returns the body and its version.
pub fn open_envelope<'a>(location: &Path, magic: &[u8; 4], max_version: u16, bytes: &'a [u8]) -> Result<(u16, &'a [u8])> {
    let loc = location.display().to_string();
    if bytes.len() < ENVELOPE_HEADER_LEN {
        return Err(Error::FileTooSmall { location: loc, expected: ENVELOPE_HEADER_LEN as u64, actual: bytes.len() as u64 });
    }
    if &bytes[0..4] != magic {
        return Err(Error::DataLoss { location: loc, detail: format!("bad magic {:?}, expected {:?}", &bytes[0..4], magic) });
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version == 0 || version > max_version {
        return Err(Error::DataLoss {
            location: loc,
            detail: format!("unsupported format version {version} (this build reads up to {max_version})"),
        });
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let expected = ENVELOPE_HEADER_LEN as u64 + len;
    if (bytes.len() as u64) < expected {
        return Err(Error::FileTooSmall { location: loc, expected, actual: bytes.len() as u64 });
    }
    let stored = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let body = &bytes[ENVELOPE_HEADER_LEN..expected as usize];
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(Error::CrcMismatch { location: loc, stored, computed });
    }
    Ok((version, body))
}

/// Replaces `path` atomically and durably: write `<path>.tmp`, fsync it, rename it over
/// `path`, fsync the directory. After a power loss `path` holds the old or the new bytes,
/// never a mix; once this returns, the new bytes.
pub fn write_atomic(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let file = fs.open(&tmp, OpenMode::CreateOrTruncate).at(tmp.display())?;
        file.write_all_at(bytes, 0).at(tmp.display())?;
        // Without it the rename can reach the disk before the data: a power loss leaves an
        // empty or torn file under the final name.
        file.sync_all().at(tmp.display())?;
    }
    fs.rename(&tmp, path).at(path.display())?;
    // Without it the rename itself may be undone by a power loss after we acknowledged it.
    sync_dir(fs, parent_of(path))
}

/// fsyncs a directory so the entries created, renamed or removed in it survive a power loss.
pub fn sync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).at(dir.display())
}

/// `create_dir_all`, then fsyncs the parent of every directory it may have created, so the
/// whole chain survives a power loss (a new directory entry is durable only once its parent
/// is synced).
pub fn create_dir_all_durable(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut probe = dir;
    while !fs.exists(probe).at(probe.display())? {
        missing.push(probe);
        match probe.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => probe = parent,
            _ => break,
        }
    }
    fs.create_dir_all(dir).at(dir.display())?;
    // Parents first: a child's entry is useless if its parent's entry is lost.
    for created in missing.iter().rev() {
        sync_dir(fs, parent_of(created))?;
    }
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

// ---- RealFs: the seam over std::fs, with real fsyncs, and the memory-map cache both use ----

/// The local file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl RealFs {
    pub fn new() -> Self {
        RealFs
    }
}

/// `OpenOptions` for a mode; every handle reads and writes.
fn open_options(mode: OpenMode) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    match mode {
        OpenMode::CreateNew => options.create_new(true),
        OpenMode::Existing => &mut options,
        OpenMode::CreateOrTruncate => options.create(true).truncate(true),
    };
    options
}

fn list_names(path: &Path) -> io::Result<Vec<OsString>> {
    std::fs::read_dir(path)?.map(|entry| entry.map(|e| e.file_name())).collect()
}

fn fsync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

impl FileSystem for RealFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        list_names(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let file = open_options(mode).open(path)?;
        Ok(Box::new(RealFile { path: path.to_path_buf(), file, map: MapCache::default() }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        fsync_dir(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
}

#[derive(Debug)]
struct RealFile {
    path: PathBuf,
    file: File,
    map: MapCache,
}

impl FsFile for RealFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn map_bytes(&self, position: u64, len: usize) -> io::Result<bytes::Bytes> {
        self.map.bytes_at(&self.file, &self.path, position, len)
    }
}

/// One read-only memory map per file handle, remapped (to the file's current length) when a
/// read reaches past it; views own an `Arc` of the map they were cut from.
#[derive(Debug, Default)]
struct MapCache {
    map: Mutex<Option<Arc<memmap2::Mmap>>>,
}

/// Lets `Bytes` own a memory map: scans hand out zero-copy slices of the page cache.
struct SharedMap(Arc<memmap2::Mmap>);

impl AsRef<[u8]> for SharedMap {
    fn as_ref(&self) -> &[u8] {
        &self.0[..]
    }
}

impl MapCache {
    fn bytes_at(&self, file: &File, path: &Path, position: u64, len: usize) -> io::Result<bytes::Bytes> {
        let end = position.checked_add(len as u64).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range overflows u64"))?;
        let map = {
            let mut cached = self.map.lock();
            match &*cached {
                Some(m) if m.len() as u64 >= end => m.clone(),
                _ => {
                    let file_len = file.metadata()?.len();
                    if file_len < end {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{}: bytes {position}..{end} requested, the file has {file_len}", path.display()),
                        ));
                    }
                    // An empty range of an empty file: mmap(2) refuses zero lengths.
                    if file_len == 0 {
                        return Ok(bytes::Bytes::new());
                    }
                    // SAFETY: the contract of `FsFile::map_bytes`: a mapped range is never
                    // rewritten or truncated while mapped (segments are append-only, torn tails
                    // are truncated at recovery before any reader exists, deletion unlinks and
                    // the mapping stays valid). Appends past the mapped length are not seen
                    // through this map; reads past it remap.
                    let m = unsafe { memmap2::MmapOptions::new().len(file_len as usize).map(file) }?;
                    // Advice only: a failure changes nothing but readahead.
                    let _ = m.advise(memmap2::Advice::Sequential);
                    let m = Arc::new(m);
                    *cached = Some(m.clone());
                    m
                }
            }
        };
        Ok(bytes::Bytes::from_owner(SharedMap(map)).slice(position as usize..end as usize))
    }
}

#[cfg(test)]
mod tests {
    //! The seam's contract, checked against both file systems, and the durable-small-file helpers.

    use super::*;
    use std::io::ErrorKind;

    /// A fresh directory on tmpfs when there is one: the power-loss tests create and remove
    /// thousands of files, and on a busy ext4 each unlink can take a millisecond.
    pub(super) fn scratch_dir() -> tempfile::TempDir {
        let shm = Path::new("/dev/shm");
        let on_tmpfs = if shm.is_dir() { tempfile::Builder::new().prefix("strom-fs-").tempdir_in(shm).ok() } else { None };
        on_tmpfs.unwrap_or_else(|| tempfile::tempdir().unwrap())
    }

    /// Both implementations over a fresh directory each.
    fn both_file_systems() -> Vec<(tempfile::TempDir, Box<dyn FileSystem>)> {
        let real_dir = scratch_dir();
        let fault_dir = scratch_dir();
        let fault = FaultFs::new(fault_dir.path()).unwrap();
        vec![(real_dir, Box::new(RealFs::new())), (fault_dir, Box::new(fault))]
    }

    fn sorted_names(fs: &dyn FileSystem, dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs.list_dir(dir).unwrap().into_iter().map(|n| n.into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn given_either_file_system_when_files_are_written_read_and_removed_should_behave_like_std_fs() {
        for (dir, fs) in both_file_systems() {
            let fs = fs.as_ref();
            let root = dir.path();
            let sub = root.join("a").join("b");
            fs.create_dir_all(&sub).unwrap();
            assert!(fs.exists(&sub).unwrap(), "{fs:?}");
            let path = sub.join("f.log");
            let file = fs.open(&path, OpenMode::CreateNew).unwrap();
            file.write_all_at(b"hello", 0).unwrap();
            file.write_all_at(b" world", 5).unwrap();
            file.sync_data().unwrap();
            assert_eq!(file.len().unwrap(), 11);
            let mut buf = [0u8; 5];
            file.read_exact_at(&mut buf, 6).unwrap();
            assert_eq!(&buf, b"world");
            assert_eq!(&file.map_bytes(6, 5).unwrap()[..], b"world");
            assert_eq!(fs.read(&path).unwrap(), b"hello world");

            assert_eq!(fs.open(&path, OpenMode::CreateNew).unwrap_err().kind(), ErrorKind::AlreadyExists, "{fs:?}");
            assert_eq!(fs.open(&sub.join("missing"), OpenMode::Existing).unwrap_err().kind(), ErrorKind::NotFound, "{fs:?}");
            assert_eq!(fs.remove_file(&sub.join("missing")).unwrap_err().kind(), ErrorKind::NotFound, "{fs:?}");
            assert_eq!(fs.read(&sub.join("missing")).unwrap_err().kind(), ErrorKind::NotFound, "{fs:?}");
            assert_eq!(fs.list_dir(&sub.join("missing")).unwrap_err().kind(), ErrorKind::NotFound, "{fs:?}");
            assert_eq!(fs.open(&root.join("nope").join("x"), OpenMode::CreateNew).unwrap_err().kind(), ErrorKind::NotFound);

            let reopened = fs.open(&path, OpenMode::Existing).unwrap();
            reopened.set_len(5).unwrap();
            assert_eq!(file.len().unwrap(), 5, "{fs:?}: both handles see one file");
            drop((file, reopened));
            let truncated = fs.open(&path, OpenMode::CreateOrTruncate).unwrap();
            assert!(truncated.is_empty().unwrap(), "{fs:?}");
            truncated.write_all_at(b"new", 0).unwrap();
            truncated.sync_all().unwrap();
            drop(truncated);

            assert_eq!(sorted_names(fs, root), vec!["a"], "{fs:?}: listings show only the node's entries");
            fs.rename(&path, &sub.join("g.log")).unwrap();
            fs.sync_dir(&sub).unwrap();
            assert_eq!(sorted_names(fs, &sub), vec!["g.log"]);
            assert_eq!(fs.read(&sub.join("g.log")).unwrap(), b"new");
            fs.remove_file(&sub.join("g.log")).unwrap();
            assert!(!fs.exists(&sub.join("g.log")).unwrap());
            fs.remove_dir_all(&root.join("a")).unwrap();
            fs.sync_dir(root).unwrap();
            assert!(!fs.exists(&root.join("a")).unwrap(), "{fs:?}");
            assert!(sorted_names(fs, root).is_empty(), "{fs:?}");
        }
    }

    #[test]
    fn given_mapped_view_when_the_file_grows_should_remap_and_see_the_new_bytes() {
        for (dir, fs) in both_file_systems() {
            let file = fs.open(&dir.path().join("seg.log"), OpenMode::CreateNew).unwrap();
            file.write_all_at(&[1u8; 4096], 0).unwrap();
            let first = file.map_bytes(0, 4096).unwrap();
            file.write_all_at(&[2u8; 100], 4096).unwrap();
            let grown = file.map_bytes(4090, 106).unwrap();
            assert_eq!(&grown[..6], &[1u8; 6], "{fs:?}");
            assert_eq!(&grown[6..], &[2u8; 100][..], "{fs:?}");
            assert!(first.iter().all(|&b| b == 1), "an earlier view stays valid after the remap");
            let err = file.map_bytes(4190, 10).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{fs:?}: {err}");
            assert!(file.map_bytes(4196, 0).unwrap().is_empty());
        }
    }

    #[test]
    fn given_envelope_when_opened_should_return_body() {
        let bytes = envelope(b"TEST", 1, b"hello");
        let (v, body) = open_envelope(Path::new("x"), b"TEST", 1, &bytes).unwrap();
        assert_eq!((v, body), (1, &b"hello"[..]));
    }

    #[test]
    fn given_flipped_bit_when_opened_should_report_crc_mismatch() {
        let mut bytes = envelope(b"TEST", 1, b"hello");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(open_envelope(Path::new("x"), b"TEST", 1, &bytes), Err(Error::CrcMismatch { .. })));
    }

    #[test]
    fn given_truncated_envelope_when_opened_should_report_too_small() {
        let bytes = envelope(b"TEST", 1, b"hello");
        let err = open_envelope(Path::new("x"), b"TEST", 1, &bytes[..bytes.len() - 2]).unwrap_err();
        assert!(matches!(err, Error::FileTooSmall { expected: 25, actual: 23, .. }), "{err}");
        let err = open_envelope(Path::new("x"), b"TEST", 1, &bytes[..3]).unwrap_err();
        assert!(matches!(err, Error::FileTooSmall { expected: 20, actual: 3, .. }), "{err}");
    }

    #[test]
    fn given_wrong_magic_or_newer_version_when_opened_should_report_data_loss() {
        let bytes = envelope(b"TEST", 2, b"hello");
        assert!(matches!(open_envelope(Path::new("x"), b"OTHR", 2, &bytes), Err(Error::DataLoss { .. })));
        let err = open_envelope(Path::new("x"), b"TEST", 1, &bytes).unwrap_err();
        assert!(matches!(&err, Error::DataLoss { detail, .. } if detail.contains("version 2")), "{err}");
    }

    #[test]
    fn given_atomic_write_when_replaced_should_hold_new_content_and_leave_no_tmp() {
        for (dir, fs) in both_file_systems() {
            let p = dir.path().join("f.bin");
            write_atomic(fs.as_ref(), &p, b"one, longer").unwrap();
            write_atomic(fs.as_ref(), &p, b"two").unwrap();
            assert_eq!(fs.read(&p).unwrap(), b"two", "{fs:?}");
            assert!(!fs.exists(&p.with_extension("tmp")).unwrap());
        }
    }

    #[test]
    fn given_atomic_write_into_missing_directory_when_written_should_name_the_tmp_file() {
        let dir = scratch_dir();
        let p = dir.path().join("missing").join("f.bin");
        let err = write_atomic(&RealFs, &p, b"x").unwrap_err();
        assert!(
            matches!(&err, Error::Io { location, source } if location.ends_with("f.tmp") && source.kind() == ErrorKind::NotFound),
            "{err}"
        );
    }

    #[test]
    fn given_nested_missing_directories_when_created_durably_should_sync_every_new_parent() {
        let dir = scratch_dir();
        let fs = FaultFs::new(dir.path()).unwrap();
        let deep: PathBuf = dir.path().join("tables").join("7").join("bucket-0");
        create_dir_all_durable(&fs, &deep).unwrap();
        assert!(fs.exists(&deep).unwrap());
        assert_eq!(fs.dir_syncs(), 3, "the root, tables and tables/7 hold new entries");
        create_dir_all_durable(&fs, &deep).unwrap();
        assert_eq!(fs.dir_syncs(), 3, "nothing new, nothing to sync");
    }

    #[test]
    fn given_bare_file_name_when_asked_for_its_parent_should_answer_the_current_directory() {
        assert_eq!(parent_of(Path::new("f.bin")), Path::new("."));
        assert_eq!(parent_of(Path::new("/data/f.bin")), Path::new("/data"));
    }
}
