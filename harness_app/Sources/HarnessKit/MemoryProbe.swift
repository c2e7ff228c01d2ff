import Darwin
import Foundation
#if os(iOS)
import os
#endif

/// Milliseconds on a monotonic clock, counted from creation (harness start).
public struct Stopwatch: Sendable {
    private let start = DispatchTime.now().uptimeNanoseconds

    public init() {}

    public var elapsedMS: Double {
        Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    }
}

/// Samples this process's memory on a background queue between `start` and `stop`.
///
/// phys_footprint is the figure jetsam compares with the app's limit (Xcode's memory gauge shows it too).
/// The peak reported is the larger of the sampled maximum and the kernel's own lifetime peak
/// (`ledger_phys_footprint_peak`), so a spike shorter than the sampling interval is not missed.
/// Thread-safe: the timer writes on its queue, the benchmark and the watchdog read under the lock.
public final class MemoryProbe: @unchecked Sendable {
    /// The schema's bound on `memory.samples`; past it only the peak and the minimum keep updating.
    static let maxSamples = 200_000
    private static let bytesPerMB = 1_048_576.0

    private let clock: Stopwatch
    private let queue = DispatchQueue(label: "dev.mlfarm.harness.memory", qos: .userInitiated)
    private let lock = NSLock()
    private var timer: DispatchSourceTimer?
    private var samples: [[Double]] = []
    private var peakMB = 0.0
    private var minAvailableMB: Double?

    public init(clock: Stopwatch) {
        self.clock = clock
    }

    public func start(intervalMS: Int) {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now(), repeating: .milliseconds(intervalMS), leeway: .microseconds(500))
        timer.setEventHandler { [weak self] in self?.sample() }
        lock.withLock { self.timer = timer }
        timer.resume()
    }

    /// Takes one sample now; also called at phase boundaries (after a load, after a prediction).
    public func sample() {
        guard let footprint = MemoryProbe.footprint() else { return }
        let available = MemoryProbe.availableMB()
        let now = clock.elapsedMS
        lock.withLock {
            let mb = Double(footprint.current) / MemoryProbe.bytesPerMB
            peakMB = max(peakMB, mb, Double(footprint.peak) / MemoryProbe.bytesPerMB)
            if let available {
                minAvailableMB = min(minAvailableMB ?? available, available)
            }
            if samples.count < MemoryProbe.maxSamples {
                samples.append([now, mb])
            }
        }
    }

    public func stop() {
        let timer = lock.withLock { () -> DispatchSourceTimer? in
            defer { self.timer = nil }
            return self.timer
        }
        timer?.cancel()
        sample()
    }

    public func report(baselineMB: Double) -> MemoryReport {
        lock.withLock {
            MemoryReport(peakPhysFootprintMB: peakMB, baselinePhysFootprintMB: baselineMB,
                         minAvailableMB: minAvailableMB, samples: samples)
        }
    }

    /// The current footprint in MB, or 0 if the kernel call fails (it does not in a normal app).
    public static func currentMB() -> Double {
        Double(footprint()?.current ?? 0) / bytesPerMB
    }

    /// task_vm_info: `phys_footprint` now and `ledger_phys_footprint_peak` over the task's life, in bytes.
    static func footprint() -> (current: UInt64, peak: UInt64)? {
        var info = task_vm_info_data_t()
        // TASK_VM_INFO_COUNT is a C macro Swift cannot import; it is the struct size in natural_t units.
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<natural_t>.size)
        let kr = withUnsafeMutablePointer(to: &info) {
            $0.withMemoryRebound(to: integer_t.self, capacity: Int(count)) {
                task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count)
            }
        }
        guard kr == KERN_SUCCESS else { return nil }
        // A kernel older than task_vm_info rev3 leaves the peak at 0; the sampled maximum then stands alone.
        return (info.phys_footprint, UInt64(max(0, info.ledger_phys_footprint_peak)))
    }

    /// os_proc_available_memory(): the app's limit minus its footprint. iOS/iPadOS only; nil on macOS.
    static func availableMB() -> Double? {
        #if os(iOS)
        return Double(os_proc_available_memory()) / bytesPerMB
        #else
        return nil
        #endif
    }
}
