//! [`FaultFs`]: a [`FileSystem`] over a real directory that remembers what has not been made
//! durable and can simulate a power loss, in the spirit of RocksDB's `FaultInjectionTestFS`.
//!
//! Every operation writes through to the real files at once, so memory-mapped readers and
//! everything else see what a page cache would show. A "sync" only records durability (no
//! fsync reaches the disk), so a test can run thousands of power losses per second.
//!
//! # Failure model (what a power loss may do)
//! - **File content**: the bytes as of the file's last `sync_data`/`sync_all` survive. Of
//!   what was written since (counted from the lowest offset changed since that sync), the
//!   disk holds one of: nothing (unsynced truncations undone too), everything, a prefix, or
//!   a prefix whose range `torn` holds zeros or garbage. Bytes never move to another offset.
//!   `sync_data` and `sync_all` are equivalent (fdatasync persists the size).
//! - **Directory entries** (POSIX, not ext4's favours): a created file or directory, a
//!   rename and a removal are durable only once their directory is synced with `sync_dir`
//!   (for a directory created or removed: its parent). Of each directory's operations since
//!   its last sync, a prefix in order survives; the rest is undone: a new entry vanishes with
//!   everything under it, a rename reverts (bringing back the file it replaced), a removed
//!   file or directory comes back with its durable content.
//! - **Crash points**: after `crash_after(n)` mutating operations (or `crash_now`) the
//!   process is dead: every mutating operation fails and reaches nothing; reads still work.
//!
//! # Not modelled
//! - Reordering within a file: what survives of the unsynced bytes is a prefix by offset
//!   (for appends, by time); a later write never survives while a lower one is lost.
//!   Tearing is byte-granular, not sector-sized.
//! - Precise dirty ranges: every byte from the lowest offset changed since the last sync on
//!   counts as unsynced (an unsynced overwrite in the middle puts the synced bytes after it
//!   at risk of tearing); bytes below that offset never change.
//! - Linux dropping dirty pages after a failed fsync: an injected sync failure leaves the
//!   data readable and unsynced. Renames across directories are refused (`Unsupported`);
//!   `sync_dir` of a file fails with ENOTDIR.
//! - RocksDB: its files do not go through this seam.
//! - Changes made under the root behind the FaultFs's back (they are taken as durable).
//!
//! # One life after another
//! ```text
//! fs.crash_after(n);                    // run the workload; the (n+1)-th mutation fails
//! /* stop and drop the engine: every handle and mapped view */
//! let report = fs.simulate_power_loss(seed)?;
//! fs.reset();                           // boot: reopen the engine, check what was acked
//! ```
//! Handles and memory-mapped views from before `simulate_power_loss` must not be used after
//! it: handles refuse every call, views may point at truncated pages.

mod tree;

use super::{list_names, open_options, FileSystem, FsFile, MapCache, OpenMode};
use parking_lot::Mutex;
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tree::{relative_names, FileData, NamespaceOp, NodeKind, Tree, ROOT, TRASH_NAME};

/// The message of every error a dead process gets.
pub const SIMULATED_POWER_LOSS: &str = "simulated power loss";

/// A file system over `root` that can lose power. See the module documentation.
#[derive(Clone)]
pub struct FaultFs {
    inner: Arc<Inner>,
}

/// Locks: `tree` serializes namespace operations; each file's data has its own lock, so
/// writers of different files run in parallel; `control` is held only to pass the gate.
/// Order: tree, then a file, then control.
struct Inner {
    root: PathBuf,
    tree: Mutex<Tree>,
    control: Mutex<Control>,
    /// Bumped by `simulate_power_loss` and `reset`: handles of an earlier life are refused.
    generation: AtomicU64,
}

type PathFilter = Box<dyn Fn(&Path) -> bool + Send + Sync>;

/// Crash point, counters and injected errors: one lock, taken once per mutating operation.
#[derive(Default)]
struct Control {
    dead: bool,
    crash_at: Option<u64>,
    mutating_ops: u64,
    file_syncs: u64,
    dir_syncs: u64,
    failing_syncs: Injection,
    failing_writes: Injection,
}

#[derive(Default)]
struct Injection {
    remaining: usize,
    only: Option<PathFilter>,
}

impl Injection {
    fn fires(&mut self, path: &Path) -> bool {
        let fires = self.remaining > 0 && self.only.as_ref().is_none_or(|matches| matches(path));
        if fires {
            self.remaining -= 1;
        }
        fires
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutation {
    Write,
    SetLen,
    FileSync,
    DirSync,
    Namespace,
}

/// An operation a power loss undid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostOperation {
    /// The file or directory vanished.
    Create { path: PathBuf },
    /// `to` went back to `from` (and `to` to what it replaced, if anything).
    Rename { from: PathBuf, to: PathBuf },
    /// The file or directory came back.
    Remove { path: PathBuf },
}

/// What a power loss left of the bytes written to a file since its last sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Back to the content of the last sync; unsynced writes and truncations are undone.
    Dropped,
    /// Everything written reached the disk.
    KeptAll,
    /// The first `kept` unsynced bytes reached the disk.
    KeptPrefix { kept: u64 },
    /// As `KeptPrefix`, then the byte range `torn` was overwritten with zeros or garbage.
    Torn { kept: u64, torn: Range<u64>, zeros: bool },
}

/// One file with unsynced changes at the power loss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLoss {
    pub path: PathBuf,
    /// Bytes below this offset were synced and not changed since; they survive unchanged.
    pub unchanged_below: u64,
    /// Bytes from `unchanged_below` to the end of the file at the power loss.
    pub unsynced: u64,
    pub outcome: FileOutcome,
}

/// What `simulate_power_loss` undid and tore, for test failure messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PowerLossReport {
    pub seed: u64,
    pub undone: Vec<LostOperation>,
    pub files: Vec<FileLoss>,
}

impl PowerLossReport {
    pub fn outcome_of(&self, path: &Path) -> Option<&FileOutcome> {
        self.files.iter().find(|f| f.path == path).map(|f| &f.outcome)
    }
}

impl fmt::Display for PowerLossReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "power loss (seed {}):", self.seed)?;
        if self.undone.is_empty() && self.files.is_empty() {
            return write!(f, " nothing unsynced");
        }
        for op in &self.undone {
            write!(f, "\n  undone {op:?}")?;
        }
        for file in &self.files {
            write!(f, "\n  {}: {:?} of {} unsynced bytes from {}", file.path.display(), file.outcome, file.unsynced, file.unchanged_below)?;
        }
        Ok(())
    }
}

impl fmt::Debug for FaultFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let control = self.inner.control.lock();
        f.debug_struct("FaultFs")
            .field("root", &self.inner.root)
            .field("dead", &control.dead)
            .field("mutating_ops", &control.mutating_ops)
            .finish_non_exhaustive()
    }
}

fn power_loss_error() -> io::Error {
    io::Error::other(SIMULATED_POWER_LOSS)
}

/// The error the real call gives for a missing path (NotFound, or what the parent says).
fn missing_error(path: &Path) -> io::Error {
    std::fs::symlink_metadata(path).err().unwrap_or_else(|| io::Error::other(format!("{}: FaultFs lost track of it", path.display())))
}

/// A small deterministic generator (SplitMix64): the outcome of a seed must not depend on a
/// library version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

impl FaultFs {
    /// A FaultFs over the existing directory `root`. What is on disk now counts as durable.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        if !std::fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{} is not a directory", root.display())));
        }
        // Left by an earlier FaultFs that did not lose power: those removals are final.
        let trash = root.join(TRASH_NAME);
        if trash.exists() {
            std::fs::remove_dir_all(&trash)?;
        }
        let inner = Inner {
            tree: Mutex::new(Tree::new(root.clone())),
            root,
            control: Mutex::new(Control::default()),
            generation: AtomicU64::new(0),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The next `n` mutating operations succeed; every one after them fails: the process is
    /// dead. Mutating: writes, set_len, syncs, directory syncs, creates, renames, removes.
    pub fn crash_after(&self, n: u64) {
        let mut control = self.inner.control.lock();
        control.crash_at = Some(control.mutating_ops + n);
    }

    /// From now on every mutating operation fails.
    pub fn crash_now(&self) {
        self.inner.control.lock().dead = true;
    }

    pub fn is_dead(&self) -> bool {
        let control = self.inner.control.lock();
        control.dead || control.crash_at.is_some_and(|at| control.mutating_ops >= at)
    }

    /// Mutating operations admitted since construction or the last `reset`.
    pub fn mutating_ops(&self) -> u64 {
        self.inner.control.lock().mutating_ops
    }

    /// `sync_data` and `sync_all` calls admitted (including those made to fail).
    pub fn file_syncs(&self) -> u64 {
        self.inner.control.lock().file_syncs
    }

    pub fn dir_syncs(&self) -> u64 {
        self.inner.control.lock().dir_syncs
    }

    /// The next `count` file syncs (`sync_data` or `sync_all`) fail with EIO; nothing
    /// becomes durable.
    pub fn fail_next_syncs(&self, count: usize) {
        self.inner.control.lock().failing_syncs = Injection { remaining: count, only: None };
    }

    /// As `fail_next_syncs`, counting only files whose path (as opened) matches.
    pub fn fail_next_syncs_matching(&self, count: usize, matches: impl Fn(&Path) -> bool + Send + Sync + 'static) {
        self.inner.control.lock().failing_syncs = Injection { remaining: count, only: Some(Box::new(matches)) };
    }

    /// The next `count` `write_all_at` calls fail with ENOSPC, writing nothing.
    pub fn fail_next_writes(&self, count: usize) {
        self.inner.control.lock().failing_writes = Injection { remaining: count, only: None };
    }

    /// As `fail_next_writes`, counting only files whose path (as opened) matches.
    pub fn fail_next_writes_matching(&self, count: usize, matches: impl Fn(&Path) -> bool + Send + Sync + 'static) {
        self.inner.control.lock().failing_writes = Injection { remaining: count, only: Some(Box::new(matches)) };
    }

    /// Cuts the power: the process is dead (as `crash_now`) and the disk is left as a power
    /// loss may leave it (see the module documentation). Deterministic for a seed given the
    /// same operations. Handles of this life are refused from now on. Call `reset` to boot.
    pub fn simulate_power_loss(&self, seed: u64) -> io::Result<PowerLossReport> {
        self.crash_now();
        let mut tree = self.inner.tree.lock();
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        let mut rng = SplitMix64(seed);
        let mut report = PowerLossReport { seed, ..Default::default() };
        for dir in tree.dirs_with_pending() {
            // An earlier undo may have deleted this directory with its parent.
            if !tree.contains(dir) {
                continue;
            }
            let pending = std::mem::take(&mut tree.dir_mut(dir).pending);
            let keep = rng.below(pending.len() as u64 + 1) as usize;
            for op in pending.into_iter().skip(keep).rev() {
                report.undone.push(undo(&mut tree, dir, op)?);
            }
        }
        for id in tree.live_files() {
            let cell = tree.file(id).expect("a file");
            let mut data = cell.lock();
            if data.is_dirty() {
                let path = tree.real_path(id);
                let outcome = lose_unsynced(&path, &data, &mut rng)?;
                report.files.push(FileLoss { path, unchanged_below: data.dirty_from, unsynced: data.len - data.dirty_from, outcome });
                data.mark_durable();
            }
        }
        tree.empty_trash()?;
        // Everything on disk is durable now; the tree rediscovers it on use.
        *tree = Tree::new(self.inner.root.clone());
        Ok(report)
    }

    /// The next life: clears the crash point, the counters and the injected errors. After
    /// `simulate_power_loss` this is a boot after a power loss; alone it is a process crash
    /// (the page cache, i.e. unsynced data, survives). Earlier handles are refused.
    pub fn reset(&self) {
        let _tree = self.inner.tree.lock();
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        *self.inner.control.lock() = Control::default();
    }

    /// Passes the crash gate (or fails: dead, or an injected error) and counts the operation.
    fn admit(&self, mutation: Mutation, path: &Path) -> io::Result<()> {
        self.inner.admit(mutation, path)
    }

    fn names(&self, path: &Path) -> io::Result<Vec<OsString>> {
        relative_names(&self.inner.root, path)
    }

    fn handle(&self, path: &Path, file: File, cell: Arc<Mutex<FileData>>) -> Box<dyn FsFile> {
        Box::new(FaultFile {
            inner: self.inner.clone(),
            generation: self.inner.generation.load(Ordering::Acquire),
            path: path.to_path_buf(),
            file,
            cell,
            map: MapCache::default(),
        })
    }
}

impl Inner {
    fn admit(&self, mutation: Mutation, path: &Path) -> io::Result<()> {
        let mut control = self.control.lock();
        if control.crash_at.is_some_and(|at| control.mutating_ops >= at) {
            control.dead = true;
        }
        if control.dead {
            return Err(power_loss_error());
        }
        control.mutating_ops += 1;
        match mutation {
            Mutation::FileSync => {
                control.file_syncs += 1;
                if control.failing_syncs.fires(path) {
                    return Err(io::Error::from_raw_os_error(libc::EIO));
                }
            }
            Mutation::DirSync => control.dir_syncs += 1,
            Mutation::Write => {
                if control.failing_writes.fires(path) {
                    return Err(io::Error::from_raw_os_error(libc::ENOSPC));
                }
            }
            Mutation::SetLen | Mutation::Namespace => {}
        }
        Ok(())
    }
}

/// Undoes one namespace operation of `dir`, on disk and in the tree.
fn undo(tree: &mut Tree, dir: tree::NodeId, op: NamespaceOp) -> io::Result<LostOperation> {
    let dir_path = tree.real_path(dir);
    Ok(match op {
        NamespaceOp::Create { name, node } => {
            tree.delete(node)?;
            LostOperation::Create { path: dir_path.join(name) }
        }
        NamespaceOp::Rename { from, to, node, replaced } => {
            tree.move_to(node, dir, from.clone())?;
            if let Some(old) = replaced {
                tree.move_to(old, dir, to.clone())?;
            }
            LostOperation::Rename { from: dir_path.join(from), to: dir_path.join(to) }
        }
        NamespaceOp::Remove { name, node } => {
            tree.move_to(node, dir, name.clone())?;
            LostOperation::Remove { path: dir_path.join(name) }
        }
    })
}

/// Leaves on disk what a power loss may leave of a file's unsynced bytes.
fn lose_unsynced(path: &Path, data: &FileData, rng: &mut SplitMix64) -> io::Result<FileOutcome> {
    let start = data.dirty_from;
    let unsynced = data.len - start;
    let outcome = match rng.below(if unsynced == 0 { 2 } else { 4 }) {
        0 => FileOutcome::Dropped,
        1 => FileOutcome::KeptAll,
        2 => FileOutcome::KeptPrefix { kept: 1 + rng.below(unsynced) },
        _ => {
            let kept = 1 + rng.below(unsynced);
            let torn_start = start + rng.below(kept);
            let end = start + kept;
            // Mostly a torn tail (size updated, data not), sometimes a range inside.
            let torn_end = if rng.below(2) == 0 { end } else { torn_start + 1 + rng.below(end - torn_start) };
            FileOutcome::Torn { kept, torn: torn_start..torn_end, zeros: rng.below(2) == 0 }
        }
    };
    let kept = match &outcome {
        FileOutcome::KeptAll => return Ok(outcome),
        FileOutcome::Dropped => 0,
        FileOutcome::KeptPrefix { kept } | FileOutcome::Torn { kept, .. } => *kept,
    };
    let file = open_options(OpenMode::Existing).open(path)?;
    file.set_len(start + kept)?;
    // Durable bytes past the kept prefix that unsynced changes replaced or cut come back.
    if let Some(old) = data.saved.get(kept as usize..).filter(|old| !old.is_empty()) {
        file.write_all_at(old, start + kept)?;
    }
    if let FileOutcome::Torn { torn, zeros, .. } = &outcome {
        let fill: Vec<u8> =
            if *zeros { vec![0; (torn.end - torn.start) as usize] } else { torn.clone().map(|_| rng.next_u64() as u8).collect() };
        file.write_all_at(&fill, torn.start)?;
    }
    Ok(outcome)
}

impl FileSystem for FaultFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let names = self.names(path)?;
        let mut tree = self.inner.tree.lock();
        self.admit(Mutation::Namespace, path)?;
        // The deepest existing ancestor; the rest is what create_dir_all creates.
        let mut existing = 0;
        let mut dir = ROOT;
        while existing < names.len() {
            match tree.resolve(&names[..=existing])? {
                Some(id) if tree.is_dir(id) => dir = id,
                Some(_) => return std::fs::create_dir_all(path),
                None => break,
            }
            existing += 1;
        }
        std::fs::create_dir_all(path)?;
        for name in &names[existing..] {
            let node = tree.attach_new(dir, name.clone(), NodeKind::Dir(Default::default()));
            tree.dir_mut(dir).pending.push(NamespaceOp::Create { name: name.clone(), node });
            dir = node;
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let names = self.names(path)?;
        let mut listed = list_names(path)?;
        if names.is_empty() {
            listed.retain(|n| n != TRASH_NAME);
        }
        Ok(listed)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let names = self.names(path)?;
        let mut tree = self.inner.tree.lock();
        if mode != OpenMode::Existing {
            self.admit(Mutation::Namespace, path)?;
        }
        let existing = tree.resolve(&names)?;
        let cell = existing.and_then(|id| tree.file(id));
        match (mode, cell) {
            (OpenMode::CreateOrTruncate, Some(cell)) => {
                // Open without truncating first: the old content may be durable and must be
                // saved before it goes.
                let file = open_options(OpenMode::Existing).open(path)?;
                {
                    let mut data = cell.lock();
                    data.before_change(&file, 0)?;
                    file.set_len(0)?;
                    data.len = 0;
                }
                Ok(self.handle(path, file, cell))
            }
            (OpenMode::Existing, Some(cell)) => Ok(self.handle(path, open_options(mode).open(path)?, cell)),
            // A directory or a missing file: the real call gives the real error.
            (OpenMode::Existing, None) => Err(open_options(mode).open(path).err().unwrap_or_else(|| missing_error(path))),
            (_, None) if existing.is_some() => Err(open_options(mode).open(path).err().unwrap_or_else(|| missing_error(path))),
            (_, _) => {
                let file = open_options(mode).open(path)?;
                let (name, parent) = names.split_last().expect("the root is a directory");
                let dir = tree.resolve(parent)?.expect("the parent exists: the file was created in it");
                let cell = Arc::new(Mutex::new(FileData::durable(0)));
                let node = tree.attach_new(dir, name.clone(), NodeKind::File(cell.clone()));
                tree.dir_mut(dir).pending.push(NamespaceOp::Create { name: name.clone(), node });
                Ok(self.handle(path, file, cell))
            }
        }
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.names(path)?;
        std::fs::read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let from_names = self.names(from)?;
        let to_names = self.names(to)?;
        let mut tree = self.inner.tree.lock();
        self.admit(Mutation::Namespace, from)?;
        let (Some((from_name, from_dir)), Some((to_name, to_dir))) = (from_names.split_last(), to_names.split_last()) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "FaultFs cannot rename its root"));
        };
        if from_dir != to_dir {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("FaultFs models renames within one directory only: {} -> {}", from.display(), to.display()),
            ));
        }
        let Some(node) = tree.resolve(&from_names)? else { return Err(missing_error(from)) };
        if from_name == to_name {
            return Ok(());
        }
        let dir = tree.resolve(from_dir)?.expect("the parent of an existing entry exists");
        let replaced = tree.resolve(&to_names)?;
        if replaced.is_some_and(|id| tree.is_dir(id)) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, format!("FaultFs does not rename onto a directory: {}", to.display())));
        }
        if let Some(old) = replaced {
            tree.move_to_trash(old)?;
        }
        if let Err(e) = tree.move_to(node, dir, to_name.clone()) {
            if let Some(old) = replaced {
                tree.move_to(old, dir, to_name.clone())?;
            }
            return Err(e);
        }
        tree.dir_mut(dir).pending.push(NamespaceOp::Rename { from: from_name.clone(), to: to_name.clone(), node, replaced });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let names = self.names(path)?;
        let mut tree = self.inner.tree.lock();
        self.admit(Mutation::Namespace, path)?;
        let Some(node) = tree.resolve(&names)? else { return Err(missing_error(path)) };
        if tree.is_dir(node) {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        remove_entry(&mut tree, node, &names)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let names = self.names(path)?;
        let mut tree = self.inner.tree.lock();
        self.admit(Mutation::Namespace, path)?;
        if names.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "FaultFs cannot remove its root"));
        }
        let Some(node) = tree.resolve(&names)? else { return Err(missing_error(path)) };
        if !tree.is_dir(node) {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        remove_entry(&mut tree, node, &names)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let names = self.names(path)?;
        let mut tree = self.inner.tree.lock();
        self.admit(Mutation::DirSync, path)?;
        let Some(dir) = tree.resolve(&names)? else { return Err(missing_error(path)) };
        if !tree.is_dir(dir) {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        // Removals and replacements are final now: their files leave the trash.
        for op in std::mem::take(&mut tree.dir_mut(dir).pending) {
            match op {
                NamespaceOp::Remove { node, .. } | NamespaceOp::Rename { replaced: Some(node), .. } => tree.delete(node)?,
                NamespaceOp::Create { .. } | NamespaceOp::Rename { replaced: None, .. } => {}
            }
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.names(path)?;
        path.try_exists()
    }
}

/// Removes a file or directory by moving it to the trash, so a power loss can bring it back.
fn remove_entry(tree: &mut Tree, node: tree::NodeId, names: &[OsString]) -> io::Result<()> {
    let (name, parent) = names.split_last().expect("not the root");
    let dir = tree.resolve(parent)?.expect("the parent of an existing entry exists");
    tree.move_to_trash(node)?;
    tree.dir_mut(dir).pending.push(NamespaceOp::Remove { name: name.clone(), node });
    Ok(())
}

/// A file opened through a [`FaultFs`]: real I/O on the real file, with its durability tracked.
struct FaultFile {
    inner: Arc<Inner>,
    generation: u64,
    /// The path it was opened as (error messages, injected-error filters).
    path: PathBuf,
    file: File,
    cell: Arc<Mutex<FileData>>,
    map: MapCache,
}

impl fmt::Debug for FaultFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultFile").field("path", &self.path).field("generation", &self.generation).finish_non_exhaustive()
    }
}

impl FaultFile {
    /// Handles of an earlier life are refused: the disk under them was rewritten.
    fn check_life(&self) -> io::Result<()> {
        if self.inner.generation.load(Ordering::Acquire) == self.generation {
            Ok(())
        } else {
            Err(io::Error::other(format!("{}: file handle from before a simulated power loss or crash", self.path.display())))
        }
    }
}

impl FsFile for FaultFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check_life()?;
        let mut data = self.cell.lock();
        self.inner.admit(Mutation::Write, &self.path)?;
        if buf.is_empty() {
            return Ok(());
        }
        data.before_change(&self.file, offset)?;
        let written = self.file.write_all_at(buf, offset);
        // A failed write may have written part of the buffer: take the length from the file.
        data.len = match written {
            Ok(()) => data.len.max(offset + buf.len() as u64),
            Err(_) => self.file.metadata().map(|m| m.len()).unwrap_or(data.len),
        };
        written
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.check_life()?;
        self.file.read_exact_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        self.check_life()?;
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_life()?;
        let mut data = self.cell.lock();
        self.inner.admit(Mutation::SetLen, &self.path)?;
        data.before_change(&self.file, len)?;
        self.file.set_len(len)?;
        data.len = len;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.check_life()?;
        let mut data = self.cell.lock();
        self.inner.admit(Mutation::FileSync, &self.path)?;
        data.mark_durable();
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn map_bytes(&self, position: u64, len: usize) -> io::Result<bytes::Bytes> {
        self.check_life()?;
        self.map.bytes_at(&self.file, &self.path, position, len)
    }
}

#[cfg(test)]
mod tests;
