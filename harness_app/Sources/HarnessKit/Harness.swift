import Foundation

/// The entry point the app (and the tests) call: run the job at `jobURL`, write result.json next to it.
/// `job.model` is resolved against `root` (the app's Documents folder, where the orchestrator pushes models
/// once to `models/<sha256>.mlpackage` for every job); it defaults to the job's own folder.
///
/// A watchdog fires at `timeout_s` even when Core ML is stuck inside one call (a Neural Engine compile can
/// take minutes): it writes a `timeout` result with what was measured so far and calls `onTimeout`, where
/// the app exits. Whoever finishes first writes the result; the other writes nothing.
public enum Harness {
    public static let name = "MLFarmHarness"
    public static let version = "1.0.0"

    /// The result written, or nil when nothing could be written (no readable job id) or the watchdog wrote it.
    public static func run(jobURL: URL, root: URL? = nil,
                           onTimeout: @escaping @Sendable () -> Void = {}) async -> HarnessResult? {
        let clock = Stopwatch()
        let jobDir = jobURL.deletingLastPathComponent()
        let resultURL = jobDir.appendingPathComponent("result.json")
        let probe = MemoryProbe(clock: clock)
        let recorder = Recorder()
        let thermalBefore = ThermalState.current

        let finish = { @Sendable (jobID: String, status: Status, message: String?) -> HarnessResult? in
            guard let figures = recorder.finish() else { return nil }
            probe.stop()
            let result = HarnessResult(jobID: jobID, status: status, error: message, figures: figures,
                                       memory: probe.report(baselineMB: figures.baselineMB),
                                       device: .current(thermalBefore: thermalBefore))
            do {
                try result.write(to: resultURL)
            } catch {
                NSLog("mlfarm harness: cannot write %@: %@", resultURL.path, String(describing: error))
            }
            return result
        }

        let job: Job
        do {
            job = try Job.load(from: jobURL)
        } catch {
            // Without a job id no valid result exists; the orchestrator then reports the missing result.
            guard let jobID = Job.peekID(at: jobURL) else { return nil }
            return finish(jobID, .error, String(describing: error))
        }

        probe.start(intervalMS: job.sampleIntervalMS)
        let watchdog = DispatchWorkItem {
            if finish(job.jobID, .timeout, HarnessError.timedOut(job.timeoutS).description) != nil { onTimeout() }
        }
        DispatchQueue.global(qos: .userInitiated).asyncAfter(deadline: .now() + job.timeoutS, execute: watchdog)
        defer { watchdog.cancel() }

        do {
            try await Benchmark(job: job, jobDir: jobDir, root: root ?? jobDir, recorder: recorder, probe: probe,
                                clock: clock).run()
            return finish(job.jobID, .ok, nil)
        } catch let error as HarnessError {
            if case .timedOut = error { return finish(job.jobID, .timeout, error.description) }
            return finish(job.jobID, .error, error.description)
        } catch {
            return finish(job.jobID, .error, String(describing: error))
        }
    }

    /// The job file named by `--job <path>` in the launch arguments, inside `documents`; nil when the argument
    /// is missing, absolute, or climbs out of the folder.
    public static func jobURL(arguments: [String], documents: URL) -> URL? {
        guard let flag = arguments.firstIndex(of: "--job"), flag + 1 < arguments.count else { return nil }
        let relative = arguments[flag + 1]
        let parts = relative.split(separator: "/")
        guard !relative.hasPrefix("/"), !parts.isEmpty, !parts.contains(where: { $0 == ".." || $0 == "." }) else {
            return nil
        }
        return documents.appendingPathComponent(relative)
    }
}

extension Job {
    /// The job id of a job file that does not decode, so the error can still be reported against it.
    static func peekID(at url: URL) -> String? {
        guard let data = try? Data(contentsOf: url),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return object["job_id"] as? String
    }
}

extension HarnessResult {
    init(jobID: String, status: Status, error: String?, figures: Recorder.Figures, memory: MemoryReport,
         device: DeviceInfo) {
        self.init(schemaVersion: Job.schemaVersion, jobID: jobID, status: status,
                  harness: HarnessInfo(name: Harness.name, version: Harness.version, runtime: .coreml),
                  device: device,
                  loadMS: LoadTimes(cold: figures.loadColdMS, warm: figures.loadWarmMS),
                  firstPredictMS: figures.firstPredictMS, latenciesMS: figures.latenciesMS, memory: memory,
                  outputs: figures.outputs, error: error.map { String($0.prefix(8000)) })
    }
}

extension DeviceInfo {
    static func current(thermalBefore: ThermalState) -> DeviceInfo {
        let info = ProcessInfo.processInfo
        let v = info.operatingSystemVersion
        let version = "\(v.majorVersion).\(v.minorVersion).\(v.patchVersion)"
        #if os(iOS)
        let model = info.environment["SIMULATOR_MODEL_IDENTIFIER"] ?? sysctlString("hw.machine")
        let system = model.hasPrefix("iPad") ? "iPadOS" : "iOS"
        #else
        let model = sysctlString("hw.model")
        let system = "macOS"
        #endif
        return DeviceInfo(model: model, os: "\(system) \(version)",
                          physicalMemoryMB: Double(info.physicalMemory) / 1_048_576,
                          thermalStateBefore: thermalBefore, thermalStateAfter: .current,
                          lowPowerMode: info.isLowPowerModeEnabled)
    }

    private static func sysctlString(_ name: String) -> String {
        var size = 0
        guard sysctlbyname(name, nil, &size, nil, 0) == 0, size > 0 else { return "unknown" }
        var buffer = [CChar](repeating: 0, count: size)
        guard sysctlbyname(name, &buffer, &size, nil, 0) == 0 else { return "unknown" }
        return String(cString: buffer)
    }
}
