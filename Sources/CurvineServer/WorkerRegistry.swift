// The workers the master knows. The embedded cluster is one process, so a worker
// registers with the master's Namespace by a direct call instead of the
// WorkerHeartbeat RPC; `stats` is called whenever the master needs capacity numbers
// (GetFilesystemInfo, fallocate's space check).
//
// Placement (AddBlock): live workers not in the client's exclude list; a worker on the
// client's host first (upstream's default "local" policy), the others round-robin;
// as many as the file's replicas, or all there are when fewer are live.
import CurvineClient

public struct WorkerStats: Sendable, Equatable {
    public var capacity: Int64
    public var available: Int64
    public var used: Int64
    public var blockCount: Int64

    public init(capacity: Int64, available: Int64, used: Int64, blockCount: Int64) {
        self.capacity = capacity; self.available = available; self.used = used; self.blockCount = blockCount
    }
}

/// One worker as GetFilesystemInfo reports it.
public struct WorkerReport: Sendable, Equatable {
    public var address: WorkerAddress
    public var live: Bool
    public var stats: WorkerStats
}

struct WorkerRegistry {
    struct Entry {
        var address: WorkerAddress
        var live: Bool
        var stats: @Sendable () -> WorkerStats
    }

    private(set) var entries: [UInt32: Entry] = [:]
    /// Round-robin cursor over the sorted worker ids.
    private var cursor = 0

    mutating func register(_ a: WorkerAddress, stats: @escaping @Sendable () -> WorkerStats) {
        entries[a.workerId] = Entry(address: a, live: true, stats: stats)
    }

    mutating func setLive(_ id: UInt32, _ live: Bool) { entries[id]?.live = live }

    mutating func remove(_ id: UInt32) { entries[id] = nil }

    /// Last known address of a worker, live or not: a reader tries it and fails over to
    /// another replica when it is down, as with a real cluster.
    func address(_ id: UInt32) -> WorkerAddress? { entries[id]?.address }

    var live: [Entry] { entries.keys.sorted().compactMap { entries[$0] }.filter(\.live) }

    mutating func choose(replicas: Int, exclude: Set<UInt32>, clientHost: String) throws -> [WorkerAddress] {
        let candidates = live.filter { !exclude.contains($0.address.workerId) }
        guard !candidates.isEmpty else {
            throw ServerError.noAvailableWorker(
                "No available worker: \(live.count) live, \(exclude.count) excluded by the client")
        }
        var order: [WorkerAddress] = []
        if !clientHost.isEmpty, let local = candidates.first(where: { $0.address.hostname == clientHost }) {
            order.append(local.address)
        }
        let start = cursor % candidates.count
        cursor &+= 1
        for i in 0..<candidates.count {
            let a = candidates[(start + i) % candidates.count].address
            if !order.contains(a) { order.append(a) }
        }
        return Array(order.prefix(max(1, replicas)))
    }
}
