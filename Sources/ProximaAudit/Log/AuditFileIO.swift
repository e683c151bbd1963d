#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The few POSIX file calls the audit log needs, with errors that name the file and the call. The
/// log uses them directly (not FileHandle) because it must control exactly when bytes reach the disk
/// (`fsync`), where a failed write is cut back to (`ftruncate`), and who holds the directory (`flock`).
enum AuditFileIO {
    static func failure(_ call: String, _ path: String, _ code: Int32 = errno) -> AuditError {
        AuditError("\(call) \(path): \(String(cString: strerror(code)))")
    }

    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws -> Int32 {
        while true {
            let fd = posixOpen(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno != EINTR { throw failure("open", path) }
        }
    }

    /// Writes all of `bytes` at `offset`.
    static func write(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws {
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { buffer in
                pwrite(fd, buffer.baseAddress! + written, buffer.count - written, off_t(offset + written))
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw failure("write", path)
            }
            if result == 0 { throw AuditError("write \(path): no progress") }
            written += result
        }
    }

    static func sync(_ fd: Int32, path: String) throws {
        while fsync(fd) != 0 {
            if errno != EINTR { throw failure("fsync", path) }
        }
    }

    /// Makes a file's creation, rename or removal in `directory` durable.
    static func syncDirectory(_ directory: String) throws {
        let fd = try open(directory, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try sync(fd, path: directory)
    }

    static func truncate(_ fd: Int32, to size: Int, path: String) throws {
        while ftruncate(fd, off_t(size)) != 0 {
            if errno != EINTR { throw failure("ftruncate", path) }
        }
    }

    static func fileSize(_ fd: Int32, path: String) throws -> Int {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure("fstat", path) }
        return Int(info.st_size)
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// The whole file, or nil when it does not exist.
    static func readAll(_ path: String) throws -> [UInt8]? {
        let fd = posixOpen(path, O_RDONLY | O_CLOEXEC, 0)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw failure("open", path)
        }
        defer { close(fd) }
        return try read(fd, offset: 0, count: try fileSize(fd, path: path), path: path)
    }

    /// `count` bytes at `offset` (fewer only at the end of the file).
    static func read(_ fd: Int32, offset: Int, count: Int, path: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let result = bytes.withUnsafeMutableBytes { buffer in
                pread(fd, buffer.baseAddress! + done, count - done, off_t(offset + done))
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw failure("read", path)
            }
            if result == 0 { break }
            done += result
        }
        if done < count { bytes.removeLast(count - done) }
        return bytes
    }

    /// Writes a small file whole and durably: a temporary file, fsync, rename, fsync of the directory.
    static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t, directory: String) throws {
        let temporary = path + ".tmp"
        unlink(temporary)
        let fd = try open(temporary, O_WRONLY | O_CREAT | O_EXCL, mode: mode)
        do {
            try write(fd, bytes, at: 0, path: temporary)
            try sync(fd, path: temporary)
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw failure("rename", temporary) }
        try syncDirectory(directory)
    }

    /// Takes the exclusive advisory lock on `path` (created if needed) without waiting; the lock lasts
    /// while the returned descriptor is open.
    static func lockExclusively(_ path: String) throws -> Int32 {
        let fd = try open(path, O_RDWR | O_CREAT, mode: 0o600)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            let code = errno
            close(fd)
            if code == EWOULDBLOCK {
                throw AuditError(
                    "the audit log's lock \(path) is held by another process (a running gateway or `proxima audit prune`); stop it first")
            }
            throw failure("flock", path, code)
        }
        return fd
    }

    static func makeDirectory(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o700) != 0, errno != EEXIST { throw failure("mkdir", prefix) }
            prefix += "/"
        }
    }

    static func listDirectory(_ path: String) throws -> [String] {
        guard let directory = opendir(path) else { throw failure("opendir", path) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// `open(2)`; named apart so that it does not collide with the static method.
@inline(__always)
private func posixOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
    #if canImport(Darwin)
    return Darwin.open(path, flags, mode)
    #elseif canImport(Musl)
    return Musl.open(path, flags, mode)
    #else
    return Glibc.open(path, flags, mode)
    #endif
}
