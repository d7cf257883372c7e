// The client protocol (CurvineFileSystem) implemented directly over a Namespace and a
// BlockStore in a local directory: no sockets, no threads of its own. It is the mock
// the file-system core's tests use, so it reproduces what CurvineClient + a real
// master + a worker would do, call for call:
//
// * metadata calls go to the same Namespace the embedded master serves, with the same
//   arguments CurvineClient puts on the wire (createFile: WRONLY|CREAT plus TRUNC to
//   overwrite or EXCL otherwise; openForWrite: RDWR[|APPEND]; symlink force=false;
//   resize off=0), so results and errors are identical — every failure is a
//   CurvineError.remote(kind, message) with the master's kind and text, and maps to the
//   same errno as over the wire. A rename the master answers with result=false
//   (src == dst) is refused as CurvineClient refuses it.
// * block data are files in the store; readers and writers behave like a worker's
//   short-circuit streams (LocalBlockIO.swift): a reader offers its fd/path when the
//   file covers the block, a hole block (no locations) reads as zeros.
//
// One InProcessFileSystem is one client (its `clientName` holds leases and locks).
// `sibling(clientName:)` gives another client over the same namespace and blocks, for
// tests of leases, locks and concurrent writers.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

public final class InProcessFileSystem: CurvineFileSystem, @unchecked Sendable {
    public let namespace: Namespace
    public let store: BlockStore
    public let clientName: String
    /// The host name this client and its one worker claim (locality, WorkerAddress.hostname).
    public let hostname: String
    /// The id of the single in-process worker holding every block.
    public let workerId: UInt32

    /// Creates (or reopens) a file system in `directory`: blocks in `<directory>/worker`,
    /// and with `persistent` the namespace journal in `<directory>/master` (replayed when
    /// it exists, so a second InProcessFileSystem on the same directory sees the data).
    /// `syncWrites` fsyncs journal and blocks like a real cluster; off by default here
    /// because unit tests do not survive power loss anyway.
    public convenience init(directory: String, persistent: Bool = false, syncWrites: Bool = false,
                            clientName: String = InProcessFileSystem.randomClientName(),
                            hostname: String = localHostname(),
                            namespaceOptions: Namespace.Options? = nil) throws {
        var o = namespaceOptions ?? Namespace.Options()
        if persistent {
            o.journalDirectory = o.journalDirectory ?? directory + "/master"
            o.syncJournal = syncWrites
        } else {
            o.journalDirectory = nil
        }
        let ns = try Namespace(options: o)
        let store = try BlockStore(root: directory + "/worker", syncWrites: syncWrites)
        if persistent { store.garbageCollect(keeping: ns.referencedBlocks(onWorker: 1)) }
        self.init(namespace: ns, store: store, clientName: clientName, hostname: hostname, workerId: 1, register: true)
    }

    /// Another client over an existing namespace and store. With `register`, the store
    /// is registered as worker `workerId` and receives the namespace's block events.
    public init(namespace: Namespace, store: BlockStore, clientName: String, hostname: String = localHostname(),
                workerId: UInt32 = 1, register: Bool) {
        self.namespace = namespace
        self.store = store
        self.clientName = clientName
        self.hostname = hostname
        self.workerId = workerId
        if register {
            namespace.registerWorker(WorkerAddress(workerId: workerId, hostname: hostname, ipAddr: "127.0.0.1", rpcPort: 0),
                                     stats: { [store] in store.stats() })
            namespace.setBlockEventHandler { [store] ev in store.apply(ev, worker: workerId) }
        }
    }

    /// A second client (own lease/lock identity) over the same namespace and blocks.
    public func sibling(clientName: String = InProcessFileSystem.randomClientName()) -> InProcessFileSystem {
        InProcessFileSystem(namespace: namespace, store: store, clientName: clientName, hostname: hostname,
                            workerId: workerId, register: false)
    }

    /// Closes the namespace journal (a persistent file system can then be reopened).
    public func close() { namespace.close() }

    public static func randomClientName() -> String {
        var g = SystemRandomNumberGenerator()
        return "inproc-" + String(g.next(), radix: 16)
    }

    // MARK: metadata

    public func fileStatus(_ path: String) throws -> FileStatus { try namespace.fileStatus(path) }

    public func exists(_ path: String) throws -> Bool { try namespace.exists(path) }

    public func listPage(_ path: String, startAfter: String?, limit: Int) throws -> [FileStatus] {
        try namespace.listOptions(path, startAfter: startAfter, limit: Int(Int32(clamping: limit)))
    }

    public func mkdir(_ path: String, mode: UInt32, owner: String, group: String, createParent: Bool) throws -> FileStatus {
        try namespace.mkdir(path, mode: mode, owner: owner, group: group, createParent: createParent)
    }

    public func createFile(_ path: String, options: CreateOptions) throws -> FileStatus {
        let flags = OpenFlags.writeOnly | OpenFlags.create | (options.overwrite ? OpenFlags.truncate : OpenFlags.exclusive)
        return try namespace.createFile(path, options: options, flags: flags, clientName: clientName)
    }

    public func openForWrite(_ path: String, append: Bool) throws -> FileBlocks {
        try namespace.openFile(path, flags: OpenFlags.readWrite | (append ? OpenFlags.append : 0),
                               options: CreateOptions(), clientName: clientName)
    }

    public func blockLocations(_ path: String) throws -> FileBlocks { try namespace.blockLocations(path) }

    public func delete(_ path: String, recursive: Bool) throws { try namespace.delete(path, recursive: recursive) }

    public func rename(_ src: String, to dst: String, flags: RenameFlags) throws {
        if try !namespace.rename(src, dst, flags: flags) {
            throw CurvineError.remote(.common, "rename \(src) -> \(dst) was refused by the master")
        }
    }

    public func setAttr(_ path: String, _ options: SetAttrOptions) throws -> FileStatus {
        try namespace.setAttr(path, options)
    }

    public func symlink(target: String, link: String, mode: UInt32, owner: String?, group: String?) throws {
        try namespace.symlink(target: target, link: link, force: false, mode: mode, owner: owner, group: group)
    }

    public func link(_ src: String, to dst: String) throws { try namespace.link(src, dst) }

    public func resize(_ path: String, length: Int64, truncate: Bool, mode: Int32) throws -> FileBlocks {
        try namespace.resize(path, truncate: truncate, offset: 0, length: length, mode: truncate ? 0 : mode)
    }

    public func addBlock(_ path: String, commit: [CommitBlock], fileLength: Int64, inodeId: Int64,
                         excludeWorkers: [UInt32]) throws -> LocatedBlock {
        try namespace.addBlock(path, inodeId: inodeId, commit: commit, fileLength: fileLength,
                               excludeWorkers: excludeWorkers, clientHostname: hostname)
    }

    public func completeFile(_ path: String, length: Int64, commit: [CommitBlock], onlyFlush: Bool, inodeId: Int64) throws {
        try namespace.completeFile(path, inodeId: inodeId, length: length, commit: commit, clientName: clientName,
                                   onlyFlush: onlyFlush)
    }

    public func filesystemInfo() throws -> FilesystemInfo {
        namespace.filesystemInfo(activeMaster: "in-process")
    }

    public func getLock(_ path: String, _ lock: FileLock) throws -> FileLock? { try namespace.getLock(path, lock) }

    public func setLock(_ path: String, _ lock: FileLock) throws -> FileLock? { try namespace.setLock(path, lock) }

    // MARK: data

    public func openBlockReader(_ block: LocatedBlock, offset: Int64) throws -> BlockReader {
        if block.isHole || block.locations.isEmpty { return HoleBlockReader(length: block.length) }
        return try LocalBlockReader(store: store, block: block)
    }

    public func openBlockWriter(_ block: LocatedBlock, offset: Int64, capacity: Int64) throws -> BlockWriter {
        try LocalBlockWriter(store: store, block: block, offset: offset, capacity: capacity, workerId: workerId)
    }
}

/// This host's name as workers advertise it: CURVINE_WORKER_HOSTNAME, else gethostname().
public func localHostname() -> String {
    if let h = getenv("CURVINE_WORKER_HOSTNAME"), h.pointee != 0 { return String(cString: h) }
    var buf = [CChar](repeating: 0, count: 256)
    gethostname(&buf, 255)
    return String(cString: buf)
}
