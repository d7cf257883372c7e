// A whole Curvine cluster in one process, for tests and demos: one Namespace, one or
// more masters serving it (the first active, the others standby), and N workers, all on
// 127.0.0.1. It is a test peer that speaks Curvine's wire protocol, not a Curvine
// replacement: no raft, no UFS, no replication pipeline.
//
// Layout under `dataDir`:
//   master/            namespace journal + snapshot (Journal.swift)
//   worker-<i>/blocks  block files of worker i (worker id i+1, stable across restarts,
//                      because block locations in the journal name worker ids)
//
// HA: all masters serve the same in-process Namespace, which stands in for raft's
// replicated state; only the active one answers, the others say NotLeaderMaster. Each
// master has its own retry cache, as upstream (the cache is not replicated).
// `failover(to:)` switches roles at runtime.
//
// Restart: `restartMaster()` stops every master listener, closes the Namespace, reopens
// it from the journal (replay) and serves it again on the same ports; workers keep
// their blocks and re-register. `stopWorker`/`startWorker` take one worker down/up on
// its port (the master keeps its address for readers but allocates no blocks to it).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient
import Synchronization

public final class EmbeddedCluster: @unchecked Sendable {
    public struct Options: Sendable {
        public var dataDir: String
        /// Port of the (initially active) master; 0 = ephemeral.
        public var masterPort: UInt16 = 0
        /// Ports of standby masters (0 = ephemeral); one standby per entry.
        public var standbyMasterPorts: [UInt16] = []
        /// One worker per entry (0 = ephemeral).
        public var workerPorts: [UInt16] = [0]
        /// fsync the journal and block files (a real cluster's durability); tests that do
        /// not cut power may turn it off for speed.
        public var syncWrites = true
        /// Host name workers advertise (default: CURVINE_WORKER_HOSTNAME or gethostname()).
        public var workerHostname: String = localHostname()
        /// Namespace tuning (block size bounds, lock expiry, clock); the journal
        /// directory and sync flag are set by the cluster.
        public var namespace = Namespace.Options()
        public var master = MasterServer.Options()

        public init(dataDir: String) { self.dataDir = dataDir }
    }

    public let options: Options
    private let lock = Lock()
    public private(set) var namespace: Namespace
    public private(set) var masters: [MasterServer] = []
    public private(set) var workers: [WorkerServer?] = []
    public private(set) var stores: [BlockStore] = []
    private var activeIndex = 0
    private var masterPorts: [UInt16] = []
    private var workerPorts: [UInt16] = []
    private var stopped = false

    /// Starts a cluster: `workers` workers on ephemeral ports unless `workerPorts` is given,
    /// `standbyMasters` standby masters on ephemeral ports unless `standbyMasterPorts` is.
    public static func start(dataDir: String, masterPort: UInt16 = 0, workers: Int = 1, workerPorts: [UInt16] = [],
                             standbyMasters: Int = 0, standbyMasterPorts: [UInt16] = [],
                             syncWrites: Bool = true) throws -> EmbeddedCluster {
        var o = Options(dataDir: dataDir)
        o.masterPort = masterPort
        o.workerPorts = workerPorts.isEmpty ? Array(repeating: 0, count: max(0, workers)) : workerPorts
        o.standbyMasterPorts = standbyMasterPorts.isEmpty ? Array(repeating: 0, count: max(0, standbyMasters))
            : standbyMasterPorts
        o.syncWrites = syncWrites
        return try EmbeddedCluster(options: o)
    }

    public init(options: Options) throws {
        self.options = options
        // A peer closing its socket must not kill the process with SIGPIPE: writes then
        // fail with EPIPE and the connection closes.
        signal(SIGPIPE, SIG_IGN)
        namespace = try Self.openNamespace(options)
        do {
            for (i, p) in options.workerPorts.enumerated() {
                let store = try BlockStore(root: "\(options.dataDir)/worker-\(i)", syncWrites: options.syncWrites)
                stores.append(store)
                store.garbageCollect(keeping: namespace.referencedBlocks(onWorker: Self.workerId(i)))
                var wo = WorkerServer.Options(workerId: Self.workerId(i), port: p)
                wo.hostname = options.workerHostname
                let w = try WorkerServer(store: store, options: wo)
                workers.append(w)
                workerPorts.append(w.port)
                w.start()
            }
            registerWorkers(namespace)
            try startMasters(ports: [options.masterPort] + options.standbyMasterPorts)
        } catch {
            stop()
            throw error
        }
    }

    deinit { stop() }

    /// Worker i's id (1-based: 0 is never a valid worker id on the wire).
    public static func workerId(_ index: Int) -> UInt32 { UInt32(index + 1) }

    private static func openNamespace(_ o: Options) throws -> Namespace {
        var no = o.namespace
        no.journalDirectory = o.dataDir + "/master"
        no.syncJournal = o.syncWrites
        return try Namespace(options: no)
    }

    private func registerWorkers(_ ns: Namespace) {
        let pairs = zip(workers.indices, stores).map { ($0, $1) }
        for (i, store) in pairs {
            let id = Self.workerId(i)
            let addr = workers[i]?.address
                ?? WorkerAddress(workerId: id, hostname: options.workerHostname, ipAddr: "127.0.0.1",
                                 rpcPort: UInt32(workerPorts[i]))
            ns.registerWorker(addr, stats: { store.stats() })
            if workers[i] == nil { ns.setWorkerLive(id, false) }
        }
        let all = pairs.map { (Self.workerId($0.0), $0.1) }
        ns.setBlockEventHandler { events in
            for (id, store) in all { store.apply(events, worker: id) }
        }
    }

    private func startMasters(ports: [UInt16]) throws {
        var started: [MasterServer] = []
        do {
            for (i, p) in ports.enumerated() {
                var mo = options.master
                mo.port = p
                started.append(try MasterServer(namespace: namespace, options: mo, role: i == activeIndex ? .active : .standby))
            }
        } catch {
            started.forEach { $0.stop() }
            throw error
        }
        masters = started
        masterPorts = started.map(\.port)
        let leader = started[activeIndex].address.description
        for m in started {
            m.activeMasterAddress = leader
            m.start()
        }
    }

    // MARK: addresses

    /// The active master.
    public var masterAddress: HostPort { lock.withLock { masters[activeIndex].address } }
    /// Every master, the initial active one first (the order of `client.master_addrs`).
    public var masterAddresses: [HostPort] { lock.withLock { masters.map(\.address) } }
    public var activeMasterIndex: Int { lock.withLock { activeIndex } }
    /// Worker i's address (its port stays the same across stopWorker/startWorker).
    public var workerAddresses: [HostPort] {
        lock.withLock { workerPorts.map { HostPort(host: "127.0.0.1", port: $0) } }
    }

    // MARK: HA and restarts

    /// Makes master `index` the active one; every other master becomes standby.
    public func failover(to index: Int) {
        lock.withLock {
            precondition(masters.indices.contains(index), "no master \(index)")
            activeIndex = index
            let leader = masters[index].address.description
            for (i, m) in masters.enumerated() {
                m.role = i == index ? .active : .standby
                m.activeMasterAddress = leader
            }
        }
    }

    /// A lost reply across a leader change, for tests of the client's retries: the next
    /// `code` request reaching master `from` runs there, its connection closes instead of
    /// the reply, and master `to` leads from then on while `from` answers NotLeaderMaster
    /// (until its fault hook is replaced or removed). The client's re-send reaches a
    /// master whose retry cache never saw the request (PROTOCOL.md §3.1).
    public func loseNextReplyThenFailover(_ code: RpcCode, from: Int = 0, to: Int = 1) {
        failover(to: from)
        let (old, next) = lock.withLock { (masters[from], masters[to]) }
        let moved = Mutex(false)
        old.setFaultHook { [weak self] f -> ServerFault in
            moved.withLock { moved -> ServerFault in
                if moved { return .fail(.notLeaderMaster, "Not a leader master, code=\(rpcName(RpcCode(rawValue: f.code))), client_ip=127.0.0.1") }
                guard f.code == code.rawValue else { return .proceed }
                moved = true
                if let c = self { c.lock.withLock { c.activeIndex = to } }
                next.role = .active
                next.activeMasterAddress = next.address.description
                return .dropAfterExecute
            }
        }
    }

    /// Stops all masters, reopens the namespace from disk (journal replay) and serves it
    /// again on the same ports, with the same active master. Client connections drop.
    public func restartMaster() throws {
        try lock.withLock {
            masters.forEach { $0.stop() }
            namespace.close()
            namespace = try Self.openNamespace(options)
            registerWorkers(namespace)
            try startMasters(ports: masterPorts)
        }
    }

    /// Takes worker `index` down: its listener and connections close, the master stops
    /// placing blocks on it. Its blocks stay on disk.
    public func stopWorker(_ index: Int) {
        let w: WorkerServer? = lock.withLock {
            let w = workers[index]
            workers[index] = nil
            namespace.setWorkerLive(Self.workerId(index), false)
            return w
        }
        w?.stop()
    }

    /// Brings worker `index` back on its previous port.
    public func startWorker(_ index: Int) throws {
        try lock.withLock {
            guard workers[index] == nil else { return }
            var wo = WorkerServer.Options(workerId: Self.workerId(index), port: workerPorts[index])
            wo.hostname = options.workerHostname
            let w = try WorkerServer(store: stores[index], options: wo)
            w.start()
            workers[index] = w
            let store = stores[index]
            namespace.registerWorker(w.address, stats: { store.stats() })
        }
    }

    /// Stops every server and closes the namespace. Idempotent.
    public func stop() {
        let (ms, ws): ([MasterServer], [WorkerServer]) = lock.withLock {
            if stopped { return ([], []) }
            stopped = true
            return (masters, workers.compactMap { $0 })
        }
        ms.forEach { $0.stop() }
        ws.forEach { $0.stop() }
        namespace.close()
    }
}
