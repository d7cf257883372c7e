// The core's background io threads (CoreConfig.ioThreads): prefetch tasks and
// write-buffer drains run here, off the FUSE request threads.
import CurvineClient

/// A task object the pool runs without allocating: submitting a closure allocates its
/// context, so the read path (one prefetch task per unit) submits an object it already
/// has (its FileReader) instead. The pool holds it unretained, so a submit costs no
/// retain/release either: the task must keep itself alive until every submission ran
/// (FileReader does: `keepAlive` while it has tasks pending).
protocol IOTask: AnyObject {
    func runIOTask()
}

/// An IOTask reference that is not counted.
struct UnretainedTask {
    unowned(unsafe) let task: IOTask
}

/// Background io threads: a FIFO of tasks. Tasks block on network I/O; none of them
/// waits for another queued task, so the pool cannot deadlock on itself.
final class IOThreadPool: @unchecked Sendable {
    private let cond = ConditionLock()
    private enum Job {
        case closure(() -> Void)
        case task(UnretainedTask)
        case taken
    }
    private var queue: [Job] = []
    private var head = 0
    private var stopping = false
    private var running = 0
    let threads: Int

    init(threads: Int, name: String = "curvine-io") {
        self.threads = max(1, threads)
        // Room for a burst of prefetch tasks up front, so the queue does not grow (malloc)
        // at some read in the middle of a stream when a new high-water mark is reached.
        queue.reserveCapacity(1024)
        for i in 0..<self.threads {
            running += 1
            startThread(name: "\(name)-\(i)") { [self] in self.loop() }
        }
    }

    func submit(_ task: @escaping () -> Void) {
        cond.lock()
        if stopping {
            cond.unlock()
            // After shutdown: still run it, on a thread of its own (callers may hold
            // their own lock while submitting, so never inline).
            startThread(name: "curvine-io-late", task)
            return
        }
        queue.append(.closure(task))
        cond.signal()
        cond.unlock()
    }

    /// Runs `task.runIOTask()` on an io thread; no allocation once the queue has grown,
    /// no retain: `task` must stay alive until it ran.
    func submit(task: IOTask) {
        cond.lock()
        if stopping {
            cond.unlock()
            startThread(name: "curvine-io-late") { task.runIOTask() }
            return
        }
        queue.append(.task(UnretainedTask(task: task)))
        cond.signal()
        cond.unlock()
    }

    private func loop() {
        cond.lock()
        while true {
            if head < queue.count {
                let t = queue[head]
                queue[head] = .taken  // the queue keeps no reference to what it handed out
                head += 1
                if head == queue.count {
                    queue.removeAll(keepingCapacity: true)
                    head = 0
                } else if head > 1024 && head * 2 > queue.count {
                    queue.removeFirst(head)
                    head = 0
                }
                cond.unlock()
                switch t {
                case .closure(let f): f()
                case .task(let o): o.task.runIOTask()
                case .taken: break
                }
                cond.lock()
                continue
            }
            if stopping { break }
            cond.wait()
        }
        running -= 1
        cond.broadcast()
        cond.unlock()
    }

    /// Runs what is queued, then stops the threads (waits at most `timeout` seconds).
    func shutdown(timeout: Double = 30) {
        cond.lock()
        stopping = true
        cond.broadcast()
        let deadline = monotonicNs() + UInt64(timeout * 1e9)
        while running > 0 {
            if !cond.wait(untilNs: deadline) { break }
        }
        cond.unlock()
    }
}
