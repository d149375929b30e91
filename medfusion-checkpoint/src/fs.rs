//! File-system helpers: durable writes, verified reads, directory fsync and locking.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use bytes::Bytes;
use xxhash_rust::xxh3::Xxh3Default;

use crate::error::{Corruption, Error, Result};

/// Bytes handed to the kernel per `writev`, and read per `read`: large enough for
/// sequential throughput, small enough that a chunk is still in the cache when hashed
/// and that writeback of one chunk overlaps the copy of the next.
const CHUNK: usize = 8 << 20;

/// The xxh3-128 of the concatenation of `parts`.
pub(crate) fn hash_parts(parts: &[&[u8]]) -> u128 {
    let mut hasher = Xxh3Default::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.digest128()
}

/// A checksum as the manifest writes it.
pub(crate) fn hex(hash: u128) -> String {
    format!("{hash:032x}")
}

/// How [`write_file`] creates its file.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Create {
    /// Replace the file if it exists.
    Replace,
    /// Fail if the file exists; give the new file this mode.
    New { mode: u32 },
}

/// Create `path` and write `parts` (not yet durable: sync the returned file, or hand
/// it to a [`SyncBatch`]).
pub(crate) fn write_file(path: &Path, parts: &[&[u8]], len: u64, create: Create) -> Result<File> {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    match create {
        Create::Replace => options.create(true).truncate(true),
        Create::New { mode } => options.create_new(true).mode(mode),
    };
    let file = options.open(path).map_err(Error::io_at("create", path))?;
    write_parts(&file, parts, len).map_err(Error::io_at("write", path))?;
    Ok(file)
}

/// Files and directories to make durable together.
///
/// They are fsynced from several threads at once, so that the file system can commit
/// them in one journal transaction instead of one after the other.
#[derive(Default)]
pub(crate) struct SyncBatch {
    items: Vec<(File, std::path::PathBuf)>,
}

impl SyncBatch {
    pub(crate) fn file(&mut self, file: File, path: &Path) {
        self.items.push((file, path.to_path_buf()));
    }

    pub(crate) fn dir(&mut self, path: &Path) -> Result<()> {
        let dir = File::open(path).map_err(Error::io_at("open directory", path))?;
        self.items.push((dir, path.to_path_buf()));
        Ok(())
    }

    /// fsync everything; the error names the first path that failed.
    pub(crate) fn run(self) -> Result<()> {
        let sync = |(file, path): &(File, std::path::PathBuf)| {
            file.sync_all().map_err(Error::io_at("fsync", path))
        };
        let Some((first, rest)) = self.items.split_first() else {
            return Ok(());
        };
        std::thread::scope(|scope| {
            let others: Vec<_> = rest
                .iter()
                .map(|item| scope.spawn(move || sync(item)))
                .collect();
            let mut result = sync(first);
            for other in others {
                let outcome = other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                result = result.and(outcome);
            }
            result
        })
    }
}

/// Write `parts` in chunks of about [`CHUNK`] bytes with `writev`, starting the
/// writeback of each chunk at once (`sync_file_range`) so that the disk works while the
/// next chunk is copied.
fn write_parts(file: &File, parts: &[&[u8]], len: u64) -> io::Result<()> {
    let fd = file.as_raw_fd();
    let mut written: u64 = 0;
    let mut batch: Vec<IoSlice<'_>> = Vec::with_capacity(64);
    let mut pieces = parts.iter().flat_map(|p| p.chunks(CHUNK)).peekable();
    while pieces.peek().is_some() {
        batch.clear();
        let mut batch_len = 0;
        while let Some(piece) = pieces.next_if(|p| batch_len == 0 || batch_len + p.len() <= CHUNK) {
            batch_len += piece.len();
            batch.push(IoSlice::new(piece));
        }
        write_all_vectored(file, &mut batch)?;
        start_writeback(fd, written, batch_len as u64);
        written += batch_len as u64;
    }
    debug_assert_eq!(written, len, "encoded length and parts disagree");
    Ok(())
}

fn write_all_vectored(mut file: &File, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn start_writeback(fd: i32, offset: u64, len: u64) {
    // SAFETY: sync_file_range only reads its integer arguments; a failure merely means the
    // writeback starts later, at the fsync that follows.
    unsafe {
        libc::sync_file_range(fd, offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_fd: i32, _offset: u64, _len: u64) {}

/// Open a file for reading without following a symbolic link at its last component.
pub(crate) fn open_read(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::Symlink {
                    path: path.to_path_buf(),
                }
            } else {
                Error::io("open", path, e)
            }
        })
}

/// Open `path` for reading and check that it is a regular file of `expected` bytes
/// (when given), returning it with its size.
fn open_checked(path: &Path, expected: Option<u64>) -> Result<(File, usize)> {
    let file = open_read(path).map_err(|e| match e {
        Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => Error::Corrupt {
            path: path.to_path_buf(),
            problem: Corruption::Missing,
        },
        other => other,
    })?;
    let meta = file.metadata().map_err(Error::io_at("stat", path))?;
    if !meta.is_file() {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            problem: Corruption::NotAFile,
        });
    }
    if let Some(expected) = expected.filter(|&e| e != meta.len()) {
        let problem = Corruption::Size {
            expected,
            actual: meta.len(),
        };
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            problem,
        });
    }
    let len = usize::try_from(meta.len()).map_err(|_| {
        Error::io(
            "read",
            path,
            io::Error::new(io::ErrorKind::OutOfMemory, "file too large"),
        )
    })?;
    Ok((file, len))
}

/// Read a whole regular file into one buffer, hashing it on the way when `hash` is set;
/// with `expected`, a file of another size is reported as corrupt before it is read.
pub(crate) fn read_file(
    path: &Path,
    hash: bool,
    expected: Option<u64>,
) -> Result<(Bytes, Option<u128>)> {
    let (file, len) = open_checked(path, expected)?;
    // Zeroed memory comes fresh from the allocator, so this costs no memset.
    let mut buf = vec![0u8; len];
    prefer_huge_pages(&mut buf);
    read_ahead(&file, len);
    let hash = if !hash {
        read_chunks(&file, path, &mut buf, |_| {})?;
        None
    } else if len < 2 * CHUNK {
        let mut hasher = Xxh3Default::new();
        read_chunks(&file, path, &mut buf, |chunk| hasher.update(chunk))?;
        Some(hasher.digest128())
    } else {
        // Large files: hash each chunk on a second thread while the next one is read.
        std::thread::scope(|scope| {
            let (chunks, received) = std::sync::mpsc::channel::<&[u8]>();
            let hasher = scope.spawn(move || {
                let mut hasher = Xxh3Default::new();
                for chunk in received {
                    hasher.update(chunk);
                }
                hasher.digest128()
            });
            // The channel only closes if the hasher panicked; `join` reports that.
            let read = read_chunks(&file, path, &mut buf, |chunk| {
                let _ = chunks.send(chunk);
            });
            drop(chunks);
            let digest = hasher
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            read.map(|()| Some(digest))
        })?
    };
    Ok((Bytes::from(buf), hash))
}

/// Ask for transparent huge pages for a large buffer not yet touched.
///
/// Faulting in fresh 4 KiB pages is most of the cost of loading a large file into owned
/// memory (25,000 faults for 100 MB); with 2 MiB pages a load took a third of the time
/// in our measurements. Where huge pages are off or unavailable this changes nothing.
#[cfg(target_os = "linux")]
fn prefer_huge_pages(buf: &mut [u8]) {
    const HUGE: usize = 2 << 20;
    if buf.len() < 4 * HUGE {
        return;
    }
    let start = (buf.as_mut_ptr() as usize).next_multiple_of(HUGE);
    let end = (buf.as_mut_ptr() as usize + buf.len()) / HUGE * HUGE;
    // SAFETY: [start, end) lies inside `buf`, which this function borrows mutably;
    // MADV_HUGEPAGE only changes how those pages are backed, never their content. A
    // failure (an older kernel, huge pages disabled) leaves the buffer as it was.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn prefer_huge_pages(_buf: &mut [u8]) {}

/// For a large file, ask the kernel to start reading all of it now, so that the disk
/// streams while the first chunks are copied (a cold load).
#[cfg(target_os = "linux")]
fn read_ahead(file: &File, len: usize) {
    if len >= 2 * CHUNK {
        // SAFETY: posix_fadvise only reads its integer arguments; it is a hint, and a
        // failure changes nothing but speed.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, len as i64, libc::POSIX_FADV_WILLNEED);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn read_ahead(_file: &File, _len: usize) {}

/// Fill `buf` from `file` chunk by chunk, handing each chunk to `each` once read, and
/// check that the file ends there.
fn read_chunks<'a>(
    mut file: &File,
    path: &Path,
    buf: &'a mut [u8],
    mut each: impl FnMut(&'a [u8]),
) -> Result<()> {
    for chunk in buf.chunks_mut(CHUNK) {
        file.read_exact(chunk).map_err(Error::io_at("read", path))?;
        each(chunk);
    }
    check_end(file, path)
}

/// The xxh3-128 of a file of `expected` bytes, read through one reused buffer.
pub(crate) fn hash_file(path: &Path, expected: u64) -> Result<u128> {
    let (file, len) = open_checked(path, Some(expected))?;
    hash_reader(&file, path, len)
}

/// The xxh3-128 of `file`, opened at `path` and measured at `len` bytes, read from its
/// start.
pub(crate) fn hash_open_file(file: &File, path: &Path, len: u64) -> Result<u128> {
    let len = usize::try_from(len).map_err(|_| {
        Error::io(
            "read",
            path,
            io::Error::new(io::ErrorKind::OutOfMemory, "file too large"),
        )
    })?;
    hash_reader(file, path, len)
}

fn hash_reader(file: &File, path: &Path, len: usize) -> Result<u128> {
    let mut buf = vec![0u8; len.min(CHUNK)];
    let mut hasher = Xxh3Default::new();
    let mut reader = file;
    let mut left = len;
    while left > 0 {
        let chunk = &mut buf[..left.min(CHUNK)];
        reader
            .read_exact(chunk)
            .map_err(Error::io_at("read", path))?;
        hasher.update(chunk);
        left -= chunk.len();
    }
    check_end(reader, path)?;
    Ok(hasher.digest128())
}

/// A file that grew since it was measured is not the file its manifest describes.
fn check_end(mut reader: &File, path: &Path) -> Result<()> {
    let mut probe = [0u8; 1];
    if reader
        .read(&mut probe)
        .map_err(Error::io_at("read", path))?
        != 0
    {
        return Err(Error::io(
            "read",
            path,
            io::Error::other("the file grew while being read"),
        ));
    }
    Ok(())
}

/// fsync a directory, so that the entries created or renamed in it are durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    let dir = File::open(path).map_err(Error::io_at("open directory", path))?;
    dir.sync_all()
        .map_err(Error::io_at("fsync directory", path))
}

/// An exclusive advisory lock on a file (`flock`), released on drop.
///
/// Separate opens conflict, so it serialises threads of one process as well as processes.
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(path: &Path) -> Result<DirLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(Error::io_at("open lock file", path))?;
        loop {
            // SAFETY: flock takes a file descriptor that `file` keeps open.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(DirLock { _file: file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(Error::io("lock", path, err));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_writes_and_hashed_reads_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let big: Vec<u8> = (0..(CHUNK * 2 + 12_345))
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let parts: Vec<&[u8]> = vec![b"head", &big[..100], &big[100..], b"", b"tail"];
        let len = parts.iter().map(|p| p.len() as u64).sum();
        let file = write_file(&path, &parts, len, Create::New { mode: 0o644 }).unwrap();
        let mut batch = SyncBatch::default();
        batch.file(file, &path);
        batch.dir(dir.path()).unwrap();
        batch.run().unwrap();
        let (bytes, hash) = read_file(&path, true, Some(len)).unwrap();
        assert_eq!(hash_file(&path, len).unwrap(), hash.unwrap());
        let short = read_file(&path, true, Some(len + 1)).unwrap_err();
        assert!(matches!(
            short,
            Error::Corrupt {
                problem: Corruption::Size { .. },
                ..
            }
        ));
        assert_eq!(bytes.len() as u64, len);
        assert_eq!(hash, Some(hash_parts(&parts)));
        assert_eq!(hash_parts(&[&bytes]), hash_parts(&parts));
        let again = write_file(&path, &parts, len, Create::New { mode: 0o644 }).unwrap_err();
        assert!(again.to_string().contains("cannot create"), "{again}");
    }

    #[test]
    fn symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        let err = read_file(&dir.path().join("link"), false, None).unwrap_err();
        assert!(matches!(err, Error::Symlink { .. }), "{err}");
    }
}
