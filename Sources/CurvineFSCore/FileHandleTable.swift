// The open-file table: fh -> FileHandle, with a lock-free, retain-free lookup for READ.
//
// `FileHandleMap` is what FileSystemCore.fileHandles is: a dictionary-like map (owner of
// the handles, mutated under handleLock) that also publishes every handle whose fh
// carries a slot index into `FileHandleSlots`, a two-level array of unmanaged pointers.
// The read path looks its handle up there: no lock, no swift_retain/release, no hashing.
//
// # fh numbers
// `reserveFh` hands out fh = generation << slotBits | index: the index names a free slot
// (recycled after release), the generation (FileSystemCore.nextFh, +1 per open) keeps fh
// values unique over the mount's life, as before. Index 0 means "no slot": such handles
// (all slots taken, or inserted with an fh from elsewhere, e.g. a handover) live in the
// dictionary only and are found by the locked slow path.
//
// # Why an unmanaged lookup is safe
// A slot is written only under handleLock, when its handle is inserted or removed; the
// dictionary holds the strong reference for as long as the slot is set. The kernel sends
// READ for an fh only between the OPEN reply that returned it and the RELEASE of it, and
// RELEASE only after every request on the file was answered (fuse_file_put), so while a
// READ looks its slot up nobody writes that slot. The read may still run on after its
// reply, when RELEASE can already be in progress: FileReader.close() waits for such
// reads to leave (`activeReads`) before the handle can go away. Shutdown keeps its
// handles alive (FileSystemCore.retiredHandles) since it has no such ordering.
// A wrong fh (a caller bug) finds an empty slot or a handle with another fh: EBADF.

/// Slot pointers, in chunks allocated on demand and kept until deinit, so a reader never
/// sees a chunk move or disappear.
final class FileHandleSlots: @unchecked Sendable {
    /// Bits of an fh that hold the slot index: 2^20 (~1 M) slots, far above any open-file
    /// limit (RLIMIT_NOFILE of the processes using the mount), so the slow path is rare.
    static let slotBits: UInt64 = 20
    static let indexMask: UInt64 = (1 << slotBits) - 1
    /// Slots per chunk (2^10): 8 KiB of pointers, allocated when the first of them is used.
    static let chunkBits = 10
    static let chunkMask = (1 << chunkBits) - 1
    static let chunkCount = 1 << (Int(slotBits) - chunkBits)

    /// chunkCount chunk pointers; a nil chunk has no slot in use yet.
    private let chunks: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutableRawPointer?>?>

    init() {
        chunks = .allocate(capacity: Self.chunkCount)
        chunks.initialize(repeating: nil, count: Self.chunkCount)
    }

    deinit {
        for i in 0..<Self.chunkCount { chunks[i]?.deallocate() }
        chunks.deallocate()
    }

    /// The handle published for `fh`'s slot, unretained (see the file comment for why
    /// that is safe for READ). It may belong to another fh: the caller compares `fh`.
    @inline(__always)
    func lookup(_ fh: UInt64) -> Unmanaged<FileHandle>? {
        let index = Int(fh & Self.indexMask)
        guard index != 0, let chunk = chunks[index >> Self.chunkBits], let p = chunk[index & Self.chunkMask] else {
            return nil
        }
        return Unmanaged<FileHandle>.fromOpaque(p)
    }

    /// Slot contents of `index` (handleLock held).
    func get(_ index: Int) -> UnsafeMutableRawPointer? {
        chunks[index >> Self.chunkBits]?[index & Self.chunkMask]
    }

    /// Sets slot `index` (handleLock held).
    func set(_ index: Int, _ p: UnsafeMutableRawPointer?) {
        let c = index >> Self.chunkBits
        if chunks[c] == nil {
            let chunk = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: Self.chunkMask + 1)
            chunk.initialize(repeating: nil, count: Self.chunkMask + 1)
            chunks[c] = chunk
        }
        chunks[c]![index & Self.chunkMask] = p
    }
}

/// fh -> FileHandle, dictionary-like; every mutation keeps `slots` in step. Guarded by
/// the owner's lock (FileSystemCore.handleLock), like the dictionary it replaces.
struct FileHandleMap: Sequence {
    private var handles: [UInt64: FileHandle] = [:]
    /// Slot indexes released and not yet handed out again.
    private var freeIndexes: [Int] = []
    /// Indexes above this were never handed out.
    private var highIndex = 0
    let slots: FileHandleSlots

    init(slots: FileHandleSlots) { self.slots = slots }

    var count: Int { handles.count }
    var isEmpty: Bool { handles.isEmpty }
    var keys: Dictionary<UInt64, FileHandle>.Keys { handles.keys }
    var values: Dictionary<UInt64, FileHandle>.Values { handles.values }
    func makeIterator() -> Dictionary<UInt64, FileHandle>.Iterator { handles.makeIterator() }

    /// A new fh for generation `generation` with a free slot index, or index 0 (no slot)
    /// when every slot is taken. Use it (insert a handle under it) before the next call.
    mutating func reserveFh(generation: UInt64) -> UInt64 {
        var index = 0
        // A slot in use by an inserted foreign fh (a handover) is skipped; it comes back
        // to the free list when that handle is removed.
        while index == 0 {
            if let i = freeIndexes.popLast() {
                if slots.get(i) == nil { index = i }
            } else if highIndex < Int(FileHandleSlots.indexMask) {
                highIndex += 1
                if slots.get(highIndex) == nil { index = highIndex }
            } else {
                break  // every slot taken: index 0, slow path
            }
        }
        return (generation << FileHandleSlots.slotBits) | UInt64(index)
    }

    subscript(fh: UInt64) -> FileHandle? {
        get { handles[fh] }
        set {
            if let h = newValue {
                if let old = handles.updateValue(h, forKey: fh) { unpublish(fh, old) }
                publish(fh, h)
            } else {
                removeValue(forKey: fh)
            }
        }
    }

    @discardableResult
    mutating func removeValue(forKey fh: UInt64) -> FileHandle? {
        guard let h = handles.removeValue(forKey: fh) else { return nil }
        unpublish(fh, h)
        return h
    }

    mutating func removeAll() {
        for (fh, h) in handles { unpublish(fh, h) }
        handles.removeAll()
    }

    private mutating func publish(_ fh: UInt64, _ h: FileHandle) {
        let index = Int(fh & FileHandleSlots.indexMask)
        guard index != 0, slots.get(index) == nil else { return }  // no slot: slow path only
        slots.set(index, Unmanaged.passUnretained(h).toOpaque())
    }

    private mutating func unpublish(_ fh: UInt64, _ h: FileHandle) {
        let index = Int(fh & FileHandleSlots.indexMask)
        guard index != 0, slots.get(index) == Unmanaged.passUnretained(h).toOpaque() else { return }
        slots.set(index, nil)
        freeIndexes.append(index)
    }
}
