// The core's background io threads (CoreConfig.ioThreads): prefetch tasks and
// write-buffer drains run here, off the FUSE request threads.
import CurvineClient

/// Background io threads: a FIFO of tasks. Tasks block on network I/O; none of them
/// waits for another queued task, so the pool cannot deadlock on itself.
final class IOThreadPool: @unchecked Sendable {
    private let cond = ConditionLock()
    private var queue: [() -> Void] = []
    private var head = 0
    private var stopping = false
    private var running = 0
    let threads: Int

    init(threads: Int, name: String = "curvine-io") {
        self.threads = max(1, threads)
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
        queue.append(task)
        cond.signal()
        cond.unlock()
    }

    private func loop() {
        cond.lock()
        while true {
            if head < queue.count {
                let t = queue[head]
                head += 1
                if head > 1024 && head * 2 > queue.count {
                    queue.removeFirst(head)
                    head = 0
                }
                cond.unlock()
                t()
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
