// What the parts of the core share: the client, the config, the inode table, buffer
// pools, io threads and counters. One per FileSystemCore.
import CurvineClient

final class CoreEnv: @unchecked Sendable {
    let client: CurvineFileSystem
    let config: CoreConfig
    let table: InodeTable
    let readPool: BufferPool
    let writePool: BufferPool
    let io: IOThreadPool
    let ids: IdentityMap
    private let statsLock = Lock()
    private var _stats = CoreStats()
    /// Metadata-cache hit/miss counters (atomics; CacheStats.swift).
    let cacheStats = CacheStats()
    /// Read-only zeros for holes (one prefetch unit; longer holes reuse it piecewise).
    let zeros: UnsafeMutableRawBufferPointer

    init(client: CurvineFileSystem, config: CoreConfig, table: InodeTable) {
        self.client = client
        self.config = config
        self.table = table
        let chunk = max(4096, config.chunkSize)
        self.readPool = BufferPool(name: "read", budget: config.readBufferBudget, minSize: chunk)
        self.writePool = BufferPool(name: "write", budget: config.writeBufferBudget, minSize: chunk)
        self.io = IOThreadPool(threads: config.ioThreads)
        self.ids = IdentityMap(defaultUid: config.defaultUid, defaultGid: config.defaultGid)
        let zlen = max(chunk, config.prefetchUnit, 1 << 20)
        self.zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: zlen, alignment: 4096)
        self.zeros.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { zeros.deallocate() }

    func count(_ body: (inout CoreStats) -> Void) {
        statsLock.lock()
        body(&_stats)
        statsLock.unlock()
    }

    var stats: CoreStats { statsLock.withLock { _stats } }

    /// Deadline for waiting on another thread's network work.
    func ioDeadline() -> UInt64 { monotonicNs() + UInt64(max(config.ioTimeout, 0.001) * 1e9) }
}
