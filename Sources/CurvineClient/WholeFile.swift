// Whole-file transfers over any CurvineFileSystem: the file write sequence of
// PROTOCOL.md §3.5 (CreateFile, AddBlock + block stream per block, CompleteFile)
// and the read sequence (block locations, block streams in file order).
// Used by the `cv` command and by tests; the mount has its own buffered paths.
#if canImport(Glibc)
import Glibc
#endif

public extension CurvineFileSystem {
    /// Writes `source` (read until EOF through `readChunk`) as a new file at `path`.
    /// Returns the bytes written.
    @discardableResult
    func writeWholeFile(_ path: String, options: CreateOptions, bufferSize: Int = 1 << 20,
                        readChunk: (UnsafeMutableRawBufferPointer) throws -> Int) throws -> Int64 {
        let status = try createFile(path, options: options)
        let blockSize = status.blockSize > 0 ? status.blockSize : options.blockSize
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 4096)
        defer { buf.deallocate() }
        var total: Int64 = 0
        var commits: [CommitBlock] = []
        var writer: BlockWriter?
        var inBlock: Int64 = 0
        do {
            while true {
                let n = try readChunk(buf)
                if n == 0 { break }
                var done = 0
                while done < n {
                    if writer == nil || inBlock == blockSize {
                        if let w = writer { commits.append(try w.commit(length: inBlock)) }
                        let b = try addBlock(path, commit: commits, fileLength: total, inodeId: status.id, excludeWorkers: [])
                        commits.removeAll()
                        writer = try openBlockWriter(b, offset: 0, capacity: blockSize)
                        inBlock = 0
                    }
                    let take = Int(min(Int64(n - done), blockSize - inBlock))
                    try writer!.write(at: inBlock, UnsafeRawBufferPointer(rebasing: buf[done..<(done + take)]))
                    inBlock += Int64(take)
                    done += take
                    total += Int64(take)
                }
            }
            if let w = writer { commits.append(try w.commit(length: inBlock)) }
            try completeFile(path, length: total, commit: commits, onlyFlush: false, inodeId: status.id)
        } catch {
            writer?.cancel()
            throw error
        }
        return total
    }

    /// Writes `bytes` as a new file at `path`.
    @discardableResult
    func writeWholeFile(_ path: String, bytes: [UInt8], options: CreateOptions = CreateOptions()) throws -> Int64 {
        var off = 0
        return try writeWholeFile(path, options: options) { buf in
            let n = min(buf.count, bytes.count - off)
            bytes.withUnsafeBytes { buf.baseAddress!.copyMemory(from: $0.baseAddress! + off, byteCount: n) }
            off += n
            return n
        }
    }

    /// Streams the file at `path` to `sink` in order. Returns the bytes read.
    @discardableResult
    func readWholeFile(_ path: String, bufferSize: Int = 1 << 20, sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        let fb = try blockLocations(path)
        if fb.status.kind == .directory {
            throw CurvineError.remote(.isADirectory, "\(path) is a directory")
        }
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 4096)
        defer { buf.deallocate() }
        var total: Int64 = 0
        for b in fb.blocks where b.length > 0 {
            let r = try openBlockReader(b, offset: 0)
            defer { r.close() }
            var off: Int64 = 0
            while off < b.length {
                let n = try r.read(at: off, into: buf)
                if n == 0 { throw CurvineError.local(EIO, "block \(b.id) ended at \(off) of \(b.length) bytes") }
                try sink(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
                off += Int64(n)
                total += Int64(n)
            }
        }
        if total < fb.status.length {
            // A tail past the last block (resize-grown without blocks) reads as zeros.
            buf.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: buf.count)
            while total < fb.status.length {
                let n = Int(min(Int64(buf.count), fb.status.length - total))
                try sink(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
                total += Int64(n)
            }
        }
        return total
    }

    /// The whole file in memory (tests and small files).
    func readWholeFile(_ path: String) throws -> [UInt8] {
        var out: [UInt8] = []
        try readWholeFile(path) { out.append(contentsOf: $0) }
        return out
    }
}
