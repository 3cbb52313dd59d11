//! What [`super::FaultFs`] remembers: the directory tree it has seen, the namespace operations
//! of each directory since its last fsync, and per file what its last sync made durable.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

pub(super) type NodeId = u64;
/// The FaultFs root directory.
pub(super) const ROOT: NodeId = 0;
/// Where removed and replaced entries wait until their removal is durable (or undone).
pub(super) const TRASH: NodeId = 1;
/// The trash directory's name under the root; hidden from listings and refused in paths.
pub(super) const TRASH_NAME: &str = ".fault-fs-trash";

/// A namespace change in one directory since its last `sync_dir`, with what undoing it needs.
#[derive(Debug)]
pub(super) enum NamespaceOp {
    /// A new file or directory entry.
    Create { name: OsString, node: NodeId },
    /// `from` renamed to `to`; the entry `to` replaced (now in the trash), if any.
    Rename { from: OsString, to: OsString, node: NodeId, replaced: Option<NodeId> },
    /// An entry removed (now in the trash).
    Remove { name: OsString, node: NodeId },
}

#[derive(Debug, Default)]
pub(super) struct DirNode {
    pub entries: BTreeMap<OsString, NodeId>,
    pub pending: Vec<NamespaceOp>,
}

#[derive(Debug)]
pub(super) enum NodeKind {
    Dir(DirNode),
    File(Arc<Mutex<FileData>>),
}

#[derive(Debug)]
pub(super) struct Node {
    pub parent: NodeId,
    pub name: OsString,
    pub kind: NodeKind,
}

/// Durability of one file's content. The bytes below `dirty_from` are the durable ones and
/// unchanged on disk; the durable bytes above it that unsynced writes or truncations
/// replaced are kept in `saved`. Appends change nothing below the old length, so for an
/// append-only file `saved` stays empty and a sync is O(1).
#[derive(Debug)]
pub(super) struct FileData {
    /// The file's length as written through the FaultFs.
    pub len: u64,
    /// The length as of the last sync.
    pub durable_len: u64,
    /// The lowest offset changed since the last sync (`len` when nothing changed).
    pub dirty_from: u64,
    /// The durable bytes `[dirty_from, durable_len)`, saved before they were changed.
    pub saved: Vec<u8>,
}

impl FileData {
    /// A file whose content on disk is durable (new and empty, or found on disk).
    pub fn durable(len: u64) -> Self {
        Self { len, durable_len: len, dirty_from: len, saved: Vec::new() }
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty_from != self.len || self.len != self.durable_len || !self.saved.is_empty()
    }

    /// Called before bytes at `from` and above change (a write, a truncation): saves the
    /// durable bytes about to be replaced, reading them from `file` where they still are.
    pub fn before_change(&mut self, file: &File, from: u64) -> io::Result<()> {
        let from = from.min(self.len);
        if from >= self.dirty_from {
            return Ok(());
        }
        // Invariant: dirty_from <= durable_len and dirty_from <= len, and the bytes below
        // dirty_from are the durable ones.
        let mut replaced = vec![0u8; (self.dirty_from - from) as usize];
        file.read_exact_at(&mut replaced, from)?;
        replaced.extend_from_slice(&self.saved);
        self.saved = replaced;
        self.dirty_from = from;
        Ok(())
    }

    /// A sync: everything written so far is durable.
    pub fn mark_durable(&mut self) {
        self.durable_len = self.len;
        self.dirty_from = self.len;
        self.saved = Vec::new();
    }
}

/// The directory tree under the root, as far as the FaultFs has seen it. Entries it has not
/// seen yet are on disk and durable; they are added when a path reaches them.
#[derive(Debug)]
pub(super) struct Tree {
    pub root: PathBuf,
    nodes: BTreeMap<NodeId, Node>,
    next_id: NodeId,
    /// The trash directory is created on first use: most lives remove nothing.
    trash_exists: bool,
}

/// `path` relative to `root`, as plain names: `..`, `.` and paths outside the root or into the
/// trash are refused so two spellings of one path cannot reach different nodes.
pub(super) fn relative_names(root: &Path, path: &Path) -> io::Result<Vec<OsString>> {
    let rest = path.strip_prefix(root).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{} is outside the FaultFs root {}", path.display(), root.display()))
    })?;
    let mut names = Vec::new();
    for component in rest.components() {
        match component {
            Component::Normal(name) => names.push(name.to_os_string()),
            Component::CurDir => {}
            _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{}: FaultFs takes plain paths", path.display()))),
        }
    }
    if names.first().is_some_and(|n| n == TRASH_NAME) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is the FaultFs trash", path.display())));
    }
    Ok(names)
}

impl Tree {
    /// Only the root and the trash: everything on disk is durable.
    pub fn new(root: PathBuf) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT, Node { parent: ROOT, name: OsString::new(), kind: NodeKind::Dir(DirNode::default()) });
        nodes.insert(TRASH, Node { parent: ROOT, name: TRASH_NAME.into(), kind: NodeKind::Dir(DirNode::default()) });
        Self { root, nodes, next_id: TRASH + 1, trash_exists: false }
    }

    pub fn trash_path(&self) -> PathBuf {
        self.root.join(TRASH_NAME)
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.nodes.contains_key(&id)
    }

    pub fn dir_mut(&mut self, id: NodeId) -> &mut DirNode {
        match &mut self.nodes.get_mut(&id).expect("known node").kind {
            NodeKind::Dir(dir) => dir,
            NodeKind::File(_) => panic!("node {id} is a file"),
        }
    }

    pub fn file(&self, id: NodeId) -> Option<Arc<Mutex<FileData>>> {
        match &self.nodes.get(&id)?.kind {
            NodeKind::File(cell) => Some(cell.clone()),
            NodeKind::Dir(_) => None,
        }
    }

    pub fn is_dir(&self, id: NodeId) -> bool {
        matches!(self.nodes[&id].kind, NodeKind::Dir(_))
    }

    /// Ids of every directory with namespace operations not yet synced, in id order.
    pub fn dirs_with_pending(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|(_, n)| matches!(&n.kind, NodeKind::Dir(d) if !d.pending.is_empty())).map(|(&id, _)| id).collect()
    }

    /// Ids of every file reachable from the root (not in the trash), in id order.
    pub fn live_files(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|&(&id, n)| matches!(n.kind, NodeKind::File(_)) && self.is_live(id)).map(|(&id, _)| id).collect()
    }

    fn is_live(&self, mut id: NodeId) -> bool {
        loop {
            match id {
                ROOT => return true,
                TRASH => return false,
                _ => id = self.nodes[&id].parent,
            }
        }
    }

    /// Where the node is on disk now.
    pub fn real_path(&self, id: NodeId) -> PathBuf {
        let mut names = Vec::new();
        let mut at = id;
        while at != ROOT {
            let node = &self.nodes[&at];
            names.push(&node.name);
            at = node.parent;
        }
        let mut path = self.root.clone();
        path.extend(names.into_iter().rev());
        path
    }

    /// The node at `names` below the root, adding entries found on disk that it has not seen
    /// (durable by definition). `None` when the path does not exist.
    pub fn resolve(&mut self, names: &[OsString]) -> io::Result<Option<NodeId>> {
        let mut at = ROOT;
        for name in names {
            at = match self.child(at, name)? {
                Some(child) => child,
                None => return Ok(None),
            };
        }
        Ok(Some(at))
    }

    fn child(&mut self, dir: NodeId, name: &OsString) -> io::Result<Option<NodeId>> {
        let NodeKind::Dir(d) = &self.nodes[&dir].kind else { return Ok(None) };
        if let Some(&id) = d.entries.get(name) {
            return Ok(Some(id));
        }
        let path = self.real_path(dir).join(name);
        let kind = match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => NodeKind::Dir(DirNode::default()),
            Ok(meta) => NodeKind::File(Arc::new(Mutex::new(FileData::durable(meta.len())))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(self.attach_new(dir, name.clone(), kind)))
    }

    /// A new node as entry `name` of `dir` (no namespace operation recorded).
    pub fn attach_new(&mut self, dir: NodeId, name: OsString, kind: NodeKind) -> NodeId {
        let id = self.next_id;
        self.next_id += 1;
        self.dir_mut(dir).entries.insert(name.clone(), id);
        self.nodes.insert(id, Node { parent: dir, name, kind });
        id
    }

    /// Moves a node to entry `name` of `dir` in the tree (the caller moves it on disk).
    pub fn move_node(&mut self, id: NodeId, dir: NodeId, name: OsString) {
        let (old_parent, old_name) = {
            let node = &self.nodes[&id];
            (node.parent, node.name.clone())
        };
        self.dir_mut(old_parent).entries.remove(&old_name);
        self.dir_mut(dir).entries.insert(name.clone(), id);
        let node = self.nodes.get_mut(&id).expect("known node");
        node.parent = dir;
        node.name = name;
    }

    /// Moves a node into the trash, on disk and in the tree.
    pub fn move_to_trash(&mut self, id: NodeId) -> io::Result<()> {
        if !self.trash_exists {
            match std::fs::create_dir(self.trash_path()) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => self.trash_exists = true,
            }
        }
        let trash_name = OsString::from(id.to_string());
        std::fs::rename(self.real_path(id), self.trash_path().join(&trash_name))?;
        self.move_node(id, TRASH, trash_name);
        Ok(())
    }

    /// Moves a node from wherever it is to entry `name` of `dir`, on disk and in the tree.
    pub fn move_to(&mut self, id: NodeId, dir: NodeId, name: OsString) -> io::Result<()> {
        std::fs::rename(self.real_path(id), self.real_path(dir).join(&name))?;
        self.move_node(id, dir, name);
        Ok(())
    }

    /// Deletes a node and everything below it, on disk and in the tree.
    pub fn delete(&mut self, id: NodeId) -> io::Result<()> {
        let path = self.real_path(id);
        let result = if self.is_dir(id) { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let parent = self.nodes[&id].parent;
        let name = self.nodes[&id].name.clone();
        self.dir_mut(parent).entries.remove(&name);
        self.forget(id);
        Ok(())
    }

    /// Drops a node and its descendants from the tree (not from disk).
    fn forget(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.remove(&id) {
            if let NodeKind::Dir(dir) = node.kind {
                for child in dir.entries.into_values() {
                    self.forget(child);
                }
            }
        }
    }

    /// Deletes everything in the trash (after a power loss: what is there stays removed).
    pub fn empty_trash(&mut self) -> io::Result<()> {
        let in_trash: Vec<NodeId> = self.dir_mut(TRASH).entries.values().copied().collect();
        for id in in_trash {
            self.delete(id)?;
        }
        Ok(())
    }
}
