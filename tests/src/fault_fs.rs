//! A file system whose next fsync can be made to fail: a pass-through FUSE file system
//! (served by a thread of the test process) over a backing directory, mounted over the
//! server's data directory. Every operation goes to the backing directory as it came; an
//! armed fault makes the next `fsync`/`fdatasync` of a file whose name ends as asked answer
//! `EIO` instead of syncing, once. The server sees a real failed fsync from the kernel,
//! through RocksDB's own call, and the disk is fine again at once: the fault a transient
//! disk error (or a thin-provisioned volume out of space for a moment) leaves. Device-mapper
//! (`dmsetup` with the `error` target) would do the same below a real file system, but not
//! every kernel has it; FUSE it is, `/dev/fuse` and root being what it needs.
//!
//! Invariants: an armed fault fails exactly one fsync, of a matching file, and is then
//! disarmed; the data written through the mount is in the backing directory whether or not
//! an fsync failed (write-through: FUSE's writeback cache is off), so what a failed fsync
//! "loses" is only the durability promise, as with a real disk whose write-back then
//! worked after all.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    MountOption, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::system::is_root;

/// How long the kernel may cache a name or an attribute: nothing, so every lookup sees the
/// backing directory as it is (the tests' traffic is small).
const TTL: Duration = Duration::ZERO;

/// A mounted pass-through whose next fsync can be made to fail; dropping it unmounts (see
/// [`FsyncFaultFs::unmount`]).
#[derive(Debug)]
pub struct FsyncFaultFs {
    faults: Arc<Faults>,
    mount_point: PathBuf,
    session: Option<BackgroundSession>,
}

/// The armed fault and what it did, shared by the test and the serving thread.
#[derive(Debug, Default)]
struct Faults {
    state: Mutex<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    /// The next fsync of a file whose name ends with this fails.
    armed: Option<String>,
    /// The files (relative to the mount point) whose fsync failed, in order.
    failed: Vec<PathBuf>,
}

impl FsyncFaultFs {
    /// Mounts a pass-through of `backing` over `mount_point` (both existing directories).
    /// Fails, saying why, without root or FUSE.
    pub fn mount(backing: &Path, mount_point: &Path) -> Result<FsyncFaultFs, String> {
        if !is_root() {
            return Err("not root: cannot mount a FUSE file system".into());
        }
        if !Path::new("/dev/fuse").exists() {
            return Err("no /dev/fuse: FUSE is unavailable here".into());
        }
        let faults = Arc::new(Faults::default());
        let root = fs::canonicalize(backing).map_err(|e| format!("the backing directory: {e}"))?;
        let fs = PassFs {
            root,
            faults: faults.clone(),
            state: Mutex::new(PassState::default()),
        };
        let mut config = Config::default();
        config.mount_options = vec![MountOption::FSName("hotline-fsync-fault".into())];
        let session = fuser::spawn_mount(fs, mount_point, &config)
            .map_err(|e| format!("mount FUSE over {}: {e}", mount_point.display()))?;
        Ok(FsyncFaultFs {
            faults,
            mount_point: mount_point.to_owned(),
            session: Some(session),
        })
    }

    /// Arms the fault: the next fsync of a file whose name ends with `name_suffix` fails
    /// with `EIO`.
    pub fn fail_next_fsync(&self, name_suffix: &str) {
        self.faults.lock().armed = Some(name_suffix.to_owned());
    }

    /// The files whose fsync the fault failed (relative to the mount point), in order.
    pub fn failed_fsyncs(&self) -> Vec<PathBuf> {
        self.faults.lock().failed.clone()
    }

    /// Unmounts (lazily: it succeeds even while a killed server's files are still open)
    /// and stops serving; the mount point is an empty directory again. Best effort, and
    /// done at most once: dropping does it too.
    pub fn unmount(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mount_point)
                .status();
            // The session's own umount then finds nothing mounted.
            drop(session);
        }
    }
}

impl Drop for FsyncFaultFs {
    fn drop(&mut self) {
        self.unmount();
    }
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this fsync of `path` is the one to fail (then disarmed and recorded).
    fn take(&self, path: &Path) -> bool {
        let mut state = self.lock();
        let hit = state
            .armed
            .as_deref()
            .is_some_and(|suffix| path.as_os_str().as_bytes().ends_with(suffix.as_bytes()));
        if hit {
            state.armed = None;
            state.failed.push(path.to_owned());
        }
        hit
    }
}

/// The pass-through: FUSE inode numbers are the backing files' own (the backing root is
/// [`INodeNo::ROOT`]), each mapped to its path relative to the root as last looked up.
#[derive(Debug)]
struct PassFs {
    root: PathBuf,
    faults: Arc<Faults>,
    state: Mutex<PassState>,
}

#[derive(Debug, Default)]
struct PassState {
    paths: HashMap<u64, PathBuf>,
    files: HashMap<u64, (PathBuf, File)>,
    next_fh: u64,
}

fn errno(e: &std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    let nanos = u32::try_from(nsecs).unwrap_or(0);
    match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH + Duration::new(secs, nanos),
        Err(_) => UNIX_EPOCH,
    }
}

impl PassFs {
    fn state(&self) -> MutexGuard<'_, PassState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The FUSE inode number of a backing file.
    fn ino(&self, meta: &fs::Metadata) -> INodeNo {
        let root_ino = fs::metadata(&self.root).map(|m| m.ino()).unwrap_or(0);
        if meta.ino() == root_ino {
            INodeNo::ROOT
        } else {
            assert_ne!(
                meta.ino(),
                INodeNo::ROOT.0,
                "a backing inode number FUSE reserves for the root"
            );
            INodeNo(meta.ino())
        }
    }

    fn attr(&self, meta: &fs::Metadata) -> FileAttr {
        let kind = match meta.mode() & libc::S_IFMT {
            libc::S_IFDIR => FileType::Directory,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFSOCK => FileType::Socket,
            libc::S_IFIFO => FileType::NamedPipe,
            _ => FileType::RegularFile,
        };
        FileAttr {
            ino: self.ino(meta),
            size: meta.size(),
            blocks: meta.blocks(),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind,
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev() as u32,
            blksize: meta.blksize() as u32,
            flags: 0,
        }
    }

    /// The path (relative to the root) of a known inode.
    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        if ino == INodeNo::ROOT {
            return Ok(PathBuf::new());
        }
        self.state().paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    /// `unlink` and `rmdir`: `remove` on the backing path of `parent`'s child `name`.
    fn remove_child(&self, parent: INodeNo, name: &OsStr, remove: fn(&Path) -> std::io::Result<()>, reply: ReplyEmpty) {
        match self
            .child(parent, name)
            .and_then(|p| remove(&self.root.join(p)).map_err(|e| errno(&e)))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// Stats `relative`, remembers its inode's path, and answers its attributes.
    fn entry(&self, relative: PathBuf) -> Result<FileAttr, Errno> {
        let meta = fs::symlink_metadata(self.root.join(&relative)).map_err(|e| errno(&e))?;
        let attr = self.attr(&meta);
        if attr.ino != INodeNo::ROOT {
            self.state().paths.insert(attr.ino.0, relative);
        }
        Ok(attr)
    }

    fn open_handle(&self, relative: PathBuf, file: File) -> FileHandle {
        let mut state = self.state();
        state.next_fh += 1;
        let fh = state.next_fh;
        state.files.insert(fh, (relative, file));
        FileHandle(fh)
    }

    /// Runs `f` on an open handle's file and its path.
    fn with_file<T>(&self, fh: FileHandle, f: impl FnOnce(&Path, &File) -> Result<T, Errno>) -> Result<T, Errno> {
        let state = self.state();
        let (path, file) = state.files.get(&fh.0).ok_or(Errno::EBADF)?;
        f(path, file)
    }

    fn open_options(flags: OpenFlags) -> OpenOptions {
        let mut options = OpenOptions::new();
        match flags.acc_mode() {
            OpenAccMode::O_RDONLY => options.read(true),
            OpenAccMode::O_WRONLY => options.write(true),
            OpenAccMode::O_RDWR => options.read(true).write(true),
        };
        options
    }
}

impl Filesystem for PassFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name).and_then(|p| self.entry(p)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let meta = match fh {
            Some(fh) => self.with_file(fh, |_, file| file.metadata().map_err(|e| errno(&e))),
            None => self
                .path(ino)
                .and_then(|p| fs::symlink_metadata(self.root.join(p)).map_err(|e| errno(&e))),
        };
        match meta {
            Ok(meta) => reply.attr(&TTL, &self.attr(&meta)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // Times and owners are left as they are: nothing under test sets them.
        let outcome = self.path(ino).and_then(|relative| {
            let path = self.root.join(relative);
            if let Some(size) = size {
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(size))
                    .map_err(|e| errno(&e))?;
            }
            if let Some(mode) = mode {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777)).map_err(|e| errno(&e))?;
            }
            fs::symlink_metadata(&path).map_err(|e| errno(&e))
        });
        match outcome {
            Ok(meta) => reply.attr(&TTL, &self.attr(&meta)),
            Err(e) => reply.error(e),
        }
    }

    /// A node other than a directory: the server's admin socket (its `bind`), a file.
    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let outcome = self.child(parent, name).and_then(|relative| {
            let path =
                std::ffi::CString::new(self.root.join(&relative).as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
            // SAFETY: `path` is a NUL-terminated path alive for the call.
            if unsafe { libc::mknod(path.as_ptr(), mode & !umask, libc::dev_t::from(rdev)) } != 0 {
                return Err(errno(&std::io::Error::last_os_error()));
            }
            self.entry(relative)
        });
        match outcome {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let outcome = self.child(parent, name).and_then(|relative| {
            let path = self.root.join(&relative);
            fs::create_dir(&path).map_err(|e| errno(&e))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & !umask & 0o7777)).map_err(|e| errno(&e))?;
            self.entry(relative)
        });
        match outcome {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove_child(parent, name, |p| fs::remove_file(p), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove_child(parent, name, |p| fs::remove_dir(p), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            reply.error(Errno::EINVAL);
            return;
        }
        let outcome = self.child(parent, name).and_then(|from| {
            let to = self.child(newparent, newname)?;
            fs::rename(self.root.join(&from), self.root.join(&to)).map_err(|e| errno(&e))?;
            self.entry(to).map(drop)
        });
        match outcome {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let outcome = self.path(ino).and_then(|from| {
            let to = self.child(newparent, newname)?;
            fs::hard_link(self.root.join(&from), self.root.join(&to)).map_err(|e| errno(&e))?;
            self.entry(to)
        });
        match outcome {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let outcome = self.path(ino).and_then(|relative| {
            let file = Self::open_options(flags)
                .open(self.root.join(&relative))
                .map_err(|e| errno(&e))?;
            Ok(self.open_handle(relative, file))
        });
        match outcome {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let outcome = self.child(parent, name).and_then(|relative| {
            let mut options = Self::open_options(OpenFlags(flags));
            options
                .create(true)
                .custom_flags(flags & libc::O_EXCL)
                .mode(mode & !umask & 0o7777);
            let file = options.open(self.root.join(&relative)).map_err(|e| errno(&e))?;
            let attr = self.entry(relative.clone())?;
            Ok((attr, self.open_handle(relative, file)))
        });
        match outcome {
            Ok((attr, fh)) => reply.created(&TTL, &attr, Generation(0), fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let outcome = self.with_file(fh, |_, file| {
            let mut buf = vec![0u8; size as usize];
            let mut filled = 0;
            while filled < buf.len() {
                match file.read_at(&mut buf[filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(errno(&e)),
                }
            }
            buf.truncate(filled);
            Ok(buf)
        });
        match outcome {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with_file(fh, |_, file| file.write_all_at(data, offset).map_err(|e| errno(&e))) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: fuser::LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().files.remove(&fh.0);
        reply.ok();
    }

    /// The fault: an armed fsync of a matching file answers `EIO` without syncing.
    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let outcome = self.with_file(fh, |path, file| {
            if self.faults.take(path) {
                return Err(Errno::EIO);
            }
            let synced = if datasync { file.sync_data() } else { file.sync_all() };
            synced.map_err(|e| errno(&e))
        });
        match outcome {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let entries = self.path(ino).and_then(|relative| {
            let mut entries = vec![
                (ino, FileType::Directory, OsStr::new(".").to_owned()),
                (ino, FileType::Directory, OsStr::new("..").to_owned()),
            ];
            for entry in fs::read_dir(self.root.join(relative)).map_err(|e| errno(&e))? {
                let entry = entry.map_err(|e| errno(&e))?;
                let kind = entry
                    .file_type()
                    .ok()
                    .and_then(FileType::from_std)
                    .unwrap_or(FileType::RegularFile);
                entries.push((INodeNo(entry.ino()), kind, entry.file_name()));
            }
            Ok(entries)
        });
        match entries {
            Ok(entries) => {
                for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
                    if reply.add(ino, i as u64 + 1, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        match self.path(ino).and_then(|p| {
            File::open(self.root.join(p))
                .and_then(|d| d.sync_all())
                .map_err(|e| errno(&e))
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let Ok(root) = std::ffi::CString::new(self.root.as_os_str().as_bytes()) else {
            reply.error(Errno::EINVAL);
            return;
        };
        // SAFETY: an all-zero statvfs is a valid value of that plain C struct.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `root` is a NUL-terminated path and `st` a statvfs alive for the call.
        if unsafe { libc::statvfs(root.as_ptr(), &mut st) } != 0 {
            reply.error(errno(&std::io::Error::last_os_error()));
            return;
        }
        reply.statfs(
            st.f_blocks,
            st.f_bfree,
            st.f_bavail,
            st.f_files,
            st.f_ffree,
            st.f_bsize as u32,
            st.f_namemax as u32,
            st.f_frsize as u32,
        );
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let outcome = self.with_file(fh, |_, file| {
            let (Ok(offset), Ok(length)) = (i64::try_from(offset), i64::try_from(length)) else {
                return Err(Errno::EINVAL);
            };
            // SAFETY: fallocate on a descriptor `file` keeps open for the call; no memory.
            if unsafe { libc::fallocate(file.as_raw_fd(), mode, offset, length) } == 0 {
                Ok(())
            } else {
                Err(errno(&std::io::Error::last_os_error()))
            }
        });
        match outcome {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
