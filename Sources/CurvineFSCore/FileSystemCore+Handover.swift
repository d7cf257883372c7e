// Restart without unmount, the core's half (the process half is in
// CurvineFuseSwift/Handover.swift, the kernel half in CShim/handover.c).
//
// Old process, with every session paused (no request is being processed and none will
// be until the new process runs): `prepareHandover` commits every open writer — the
// data written so far becomes durable and the file complete on the master, exactly as
// at a last close — and exports the state the kernel can still refer to.
// New process, before its session starts: `restoreHandover` rebuilds the inode table and
// re-registers every open file and directory handle under the number the kernel knows.
//
// Semantics across a hand-over (docs/SEMANTICS.md, "Restart without unmount"):
//   - reads and writes through handles opened before go on; a writable handle starts a
//     new write session (OpenFile for write) on its next write;
//   - a file being written is complete on the master from the hand-over on (other
//     clients see its length then, not only at close);
//   - caches start cold; a directory stream resumes at its offset by listing again;
//   - locks stay held (same client name, same owners) and their leases keep being
//     refreshed; a blocked F_SETLKW/flock wait returns EINTR.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CurvineClient

extension FileSystemCore {
    /// Commits every writer and returns this mount's state. Throws (and the hand-over is
    /// abandoned, the mount keeps serving) when a writer cannot commit: its error stays
    /// with the writer and reaches the application as at close.
    public func prepareHandover() throws -> CoreHandoverState {
        var done = Set<ObjectIdentifier>()
        for o in table.allOpen() {
            if let w = o.writer, done.insert(ObjectIdentifier(w)).inserted {
                try w.commit()
                table.invalidateStatus(o.ino)
            }
        }
        let (nodes, synthetic, nextSynthetic) = table.exportForHandover()
        let (files, dirs, next, hidden) = handleLock.withLock {
            (fileHandles.values.map {
                CoreHandoverState.FileHandleState(fh: $0.fh, ino: $0.ino, readable: $0.readable, writable: $0.writable,
                                                  keepCache: $0.keepCache)
            }, dirHandles.map { CoreHandoverState.DirHandleState(fh: $0.key, ino: $0.value.ino) }, nextFh, hiddenCounter)
        }
        let pt = passthroughState
        let (ptInodes, ptHandles) = pt.lock.withLock {
            (pt.inodes.map { CoreHandoverState.PassthroughInode(ino: $0.key, normal: $0.value.normal,
                                                               passthrough: $0.value.passthrough,
                                                               backingId: $0.value.backingId) },
             pt.handles.map { CoreHandoverState.PassthroughHandle(fh: $0.key, ino: $0.value.ino,
                                                                 passthrough: $0.value.passthrough,
                                                                 reason: $0.value.reason) })
        }
        let ls = lockState
        let locks: [CoreHandoverState.LockOwner] = ls.cond.withLock {
            ls.inodes.flatMap { ino, e in
                e.owners.map { k, h in
                    CoreHandoverState.LockOwner(ino: ino, owner: k.owner, flavor: k.flavor.rawValue, pid: h.pid,
                                                fhs: Array(h.fhs),
                                                ranges: h.ranges.map { .init(type: $0.type.rawValue, start: $0.start,
                                                                             end: $0.end) })
                }
            }
        }
        return CoreHandoverState(fsPath: config.fsPath, rootId: table.rootId, nodes: nodes, synthetic: synthetic,
                                 nextSynthetic: nextSynthetic, files: files, dirs: dirs, nextFh: next,
                                 hiddenCounter: hidden, passthroughInodes: ptInodes, passthroughHandles: ptHandles,
                                 locks: locks)
    }

    /// Rebuilds this (fresh, not yet serving) core from the previous process's state.
    /// Throws when the state cannot belong to this mount (another fs_path, or fs_path was
    /// replaced by another directory). Returns one warning per handle that could not be
    /// restored (its file is gone: the kernel's next use of it gets EBADF).
    public func restoreHandover(_ st: CoreHandoverState) throws -> [String] {
        guard st.version == coreHandoverVersion else {
            throw FSError(EINVAL, "hand-over state version \(st.version), this binary reads \(coreHandoverVersion)")
        }
        guard st.fsPath == config.fsPath else {
            throw FSError(EINVAL, "hand-over state is for fs_path \(st.fsPath), this mount serves \(config.fsPath)")
        }
        guard st.rootId == table.rootId else {
            throw FSError(ESTALE, "fs_path \(st.fsPath) is another directory now (inode \(table.rootId), was \(st.rootId))")
        }
        var warnings: [String] = []
        let deferred = table.importForHandover(nodes: st.nodes, synthetic: st.synthetic, nextSynthetic: st.nextSynthetic)
        for f in st.files.sorted(by: { $0.fh < $1.fh }) {
            do {
                let (_, status, _) = try statusOf(f.ino, fresh: true)
                let h = try attachHandle(ino: f.ino, status: status, readable: f.readable, writable: f.writable,
                                         fixedFh: f.fh)
                h.keepCache = f.keepCache
            } catch {
                warnings.append("open file handle \(f.fh) (inode \(f.ino)) not restored: \(error)")
            }
        }
        for ino in deferred {
            let orphan: String? = table.lock.withLock {
                guard let n = table.nodeLocked(ino) else { return nil }
                if let o = n.open { o.deferredDelete = true; return nil }
                return table.pathLocked(n)  // its handles could not be restored: delete now
            }
            if let p = orphan { try? client.delete(p, recursive: false) }
        }
        handleLock.withLock {
            for d in st.dirs { dirHandles[d.fh] = DirHandle(ino: d.ino) }
            nextFh = max(nextFh, st.nextFh)
            hiddenCounter = max(hiddenCounter, st.hiddenCounter)
        }
        let pt = passthroughState
        pt.lock.withLock {
            for i in st.passthroughInodes {
                pt.inodes[i.ino] = PassthroughState.Modes(normal: i.normal, passthrough: i.passthrough,
                                                          backingId: i.backingId)
            }
            for h in st.passthroughHandles {
                pt.handles[h.fh] = PassthroughState.Handle(ino: h.ino, passthrough: h.passthrough, reason: h.reason)
            }
            pt.stats.backingIds = pt.inodes.values.filter { $0.backingId > 0 }.count
        }
        let ls = lockState
        ls.cond.withLock {
            for o in st.locks {
                guard let flavor = LockFlavor(rawValue: o.flavor) else { continue }
                let e = ls.inodes[o.ino] ?? LockState.InodeLocks()
                let h = LockState.Held()
                h.pid = o.pid
                h.fhs = Set(o.fhs)
                h.ranges = o.ranges.compactMap { r in
                    LockType(rawValue: r.type).map { LockState.Range(type: $0, start: r.start, end: r.end) }
                }
                e.owners[LockState.OwnerKey(owner: o.owner, flavor: flavor)] = h
                ls.inodes[o.ino] = e
            }
        }
        if !st.locks.isEmpty { startLockRefresher() }
        return warnings
    }
}
