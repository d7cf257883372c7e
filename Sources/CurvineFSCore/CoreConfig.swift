// Settings of the file-system core. Names and defaults follow upstream's [fuse] section
// (reference/curvine-fuse.md §3) where a key exists there; the rest say why they are
// what they are.

public struct CoreConfig: Sendable {
    /// Curvine directory shown as the mount root ([fuse] fs_path). Created if missing, as upstream.
    public var fsPath: String = "/"
    /// Kernel dentry TTL in seconds (entry_timeout_ms 1000).
    public var entryTimeout: Double = 1.0
    /// Kernel attribute TTL in seconds (attr_timeout_ms 1000); also the TTL of the core's own
    /// status cache unless `enableMetaCache` asks for longer.
    public var attrTimeout: Double = 1.0
    /// Negative dentry TTL (negative_timeout_ms 0 = off). When > 0 a missing name is answered
    /// with an Entry whose ino is 0, which the kernel caches; when 0 lookup throws ENOENT.
    public var negativeTimeout: Double = 0
    /// FOPEN_DIRECT_IO on every open (direct_io).
    public var directIO: Bool = false
    /// FOPEN_NONSEEKABLE on every open (non_seekable).
    public var nonSeekable: Bool = false
    /// Refuse every mutation with EROFS (readonly).
    public var readonly: Bool = false
    /// POSIX permission checks in user space (check_permission). The adapter should also
    /// mount with default_permissions; the core's checks keep ops such as setattr's
    /// ownership rules and xattrs right either way.
    public var checkPermission: Bool = true
    /// Entries per ListOptions page (list_limit). A directory handle holds one page.
    public var listLimit: Int = 1000
    /// Stat-ahead (InodeTable.swift): entries fetched per listing page when lookups in one
    /// directory miss in increasing name order; 0 turns it off. An entry answers a later
    /// lookup miss of its name within the status TTL, as a lookup at listing time would.
    public var statAheadPage: Int = 1000
    /// Lookup misses in increasing name order, in one directory, before a page is fetched.
    public var statAheadStreak: Int = 4
    /// Negative stat-ahead (AbsentRange.swift): a listing page also answers lookups of
    /// names it proves missing, within the status TTL, so a run of creates in name order
    /// costs no FileStatus per new name. Off: only the master says a name is missing.
    public var statAheadNegatives: Bool = true
    /// Keep statuses and negative entries in user space for `metaCacheTTL` instead of
    /// `attrTimeout`/`negativeTimeout` (enable_meta_cache). Staleness across clients
    /// grows to that TTL; local changes always update the cache.
    public var enableMetaCache: Bool = false
    /// Seconds (meta_cache_timeout 60 s).
    public var metaCacheTTL: Double = 60

    /// Process-wide cap on read buffers (prefetched and in-flight data), bytes.
    /// 1 GiB: a GPU node serves ~8 GPUs × 8 DataLoader workers = 64 concurrent streams;
    /// a stream needs about bandwidth × latency ≈ 2 GB/s × 4 ms ≈ 8 MiB ahead to keep a
    /// worker connection busy, so 64 × 16 MiB fits with room. It is a small share of the
    /// 0.5–2 TiB such nodes have and of a typical 4 GiB mount-pod limit. Past the budget
    /// prefetch stops growing (reads still proceed), so it bounds memory, not progress.
    public var readBufferBudget: Int = 1 << 30
    /// Largest prefetch window of one sequential stream, bytes (see Prefetch.swift).
    /// 64 MiB: 4× the bandwidth-delay product above, so one stream can absorb worker
    /// hiccups; 16 such streams fill the default budget.
    public var maxPrefetchWindow: Int = 64 << 20
    /// First prefetch window once a read looks sequential: one unit, doubling per hit.
    public var initialPrefetchWindow: Int = 1 << 20
    /// Bytes one prefetch task fetches into one pooled buffer. 1 MiB = the largest read the
    /// kernel sends (max_pages 256 × 4 KiB), aligned, so a read is served from one buffer
    /// without copying (a 128 KiB readahead read never straddles two units either).
    public var prefetchUnit: Int = 1 << 20
    /// Reads ending within this distance behind the furthest read still count as
    /// sequential: kernel async readahead issues reads out of order (mountpoint-s3 uses
    /// 1 MiB, "large enough to tolerate a single out-of-order Linux readahead" of the
    /// default 128 KiB). Requests of one readahead window are served by several threads
    /// and reach the core up to ~2 windows out of order, so the mount sets it to
    /// 2 × read_ahead_kb + 1 MiB (Readahead.swift).
    public var maxBackwardSeek: Int = 1 << 20
    /// Worker streams one open file may use at once (prefetch + demand reads).
    public var maxStreamsPerHandle: Int = 4
    /// Background io threads: prefetch tasks and write-buffer drains run on them.
    /// 16: each task blocks on one worker stream (stop-and-wait), so this bounds the
    /// node's concurrent block streams; 2 cores are enough since the work is waiting.
    public var ioThreads: Int = 16

    /// Bytes per BlockWriter.write call and the smallest pooled buffer (upstream
    /// write_chunk_size/read_chunk_size 128 KiB).
    public var chunkSize: Int = 128 << 10
    /// Size of one write buffer. Writes are copied into it and streamed to the worker by
    /// an io thread once it is full or on flush.
    public var writeBufferSize: Int = 1 << 20
    /// Write buffers one file may have queued; a writer faster than its worker waits.
    public var writeBuffersPerFile: Int = 8
    /// Process-wide cap on write buffers, bytes. Each writer always gets one buffer, so
    /// this bounds memory and never blocks progress. 256 MiB = 32 files streaming at full speed.
    public var writeBufferBudget: Int = 256 << 20
    /// Block size of new files (client block_size, 128 MiB as upstream).
    public var blockSize: Int64 = 128 << 20
    /// Replicas of new files (client replicas 1).
    public var replicas: Int32 = 1

    /// Owner/group for names that do not resolve to a local user/group ([fuse] uid/gid;
    /// upstream defaults to the daemon's ids).
    public var defaultUid: UInt32 = 0
    public var defaultGid: UInt32 = 0
    /// [fuse] umask (022); used for the synthesized "." and ".." only.
    public var umask: UInt32 = 0o022
    /// st_blksize reported to stat: stdio and Python size their buffers by it, so 128 KiB
    /// (one chunk) means 32× fewer FUSE writes than 4 KiB from buffered writers.
    public var statBlockSize: UInt32 = 128 << 10
    /// Longest wait, seconds, for another thread's network work (an in-flight prefetch
    /// or a writer drain) before the request fails with ETIMEDOUT. Above the client's own
    /// timeouts so a normal failure arrives first; it only keeps a request from hanging.
    public var ioTimeout: Double = 180

    public init() {}
}
