import Foundation

/// What the harness writes as `result.json` (contract: `harness_app/contract/result.schema.json`).
///
/// Memory figures are MB of 2^20 bytes, times are milliseconds. A jetsam-killed harness writes nothing.
public struct HarnessResult: Codable, Equatable, Sendable {
    public let schemaVersion: Int
    public let jobID: String
    public let status: Status
    public let harness: HarnessInfo
    public let device: DeviceInfo
    public let loadMS: LoadTimes
    public let firstPredictMS: Double
    public let latenciesMS: [Double]
    public let memory: MemoryReport
    /// Model output name -> .npy file name in the job folder (first prediction).
    public let outputs: [String: String]
    public let error: String?

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case jobID = "job_id"
        case status
        case harness
        case device
        case loadMS = "load_ms"
        case firstPredictMS = "first_predict_ms"
        case latenciesMS = "latencies_ms"
        case memory
        case outputs
        case error
    }

    // Written by hand because the synthesized encoder drops a nil `error`; the schema requires the key (null).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(schemaVersion, forKey: .schemaVersion)
        try c.encode(jobID, forKey: .jobID)
        try c.encode(status, forKey: .status)
        try c.encode(harness, forKey: .harness)
        try c.encode(device, forKey: .device)
        try c.encode(loadMS, forKey: .loadMS)
        try c.encode(firstPredictMS, forKey: .firstPredictMS)
        try c.encode(latenciesMS, forKey: .latenciesMS)
        try c.encode(memory, forKey: .memory)
        try c.encode(outputs, forKey: .outputs)
        try c.encode(error, forKey: .error)
    }

    /// Writes the JSON atomically, so a reader never sees half a file.
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url, options: .atomic)
    }
}

public enum Status: String, Codable, Sendable {
    case ok
    case error
    case timeout
}

public struct HarnessInfo: Codable, Equatable, Sendable {
    public let name: String
    public let version: String
    public let runtime: Runtime

    enum CodingKeys: String, CodingKey {
        case name
        case version
        case runtime
    }
}

/// What executed the model. This app is always `coreml`; the Python host harness on Linux is `mil-executor`.
public enum Runtime: String, Codable, Sendable {
    case coreml
    case milExecutor = "mil-executor"
}

public struct DeviceInfo: Codable, Equatable, Sendable {
    /// ProductType on iPhone/iPad (`iPhone13,2`), `hw.model` on a Mac (`Mac14,2`).
    public let model: String
    public let os: String
    public let physicalMemoryMB: Double?
    public let thermalStateBefore: ThermalState
    public let thermalStateAfter: ThermalState
    public let lowPowerMode: Bool

    enum CodingKeys: String, CodingKey {
        case model
        case os
        case physicalMemoryMB = "physical_memory_mb"
        case thermalStateBefore = "thermal_state_before"
        case thermalStateAfter = "thermal_state_after"
        case lowPowerMode = "low_power_mode"
    }
}

public enum ThermalState: String, Codable, Sendable {
    case nominal
    case fair
    case serious
    case critical
    case unknown

    public static var current: ThermalState {
        switch ProcessInfo.processInfo.thermalState {
        case .nominal: return .nominal
        case .fair: return .fair
        case .serious: return .serious
        case .critical: return .critical
        @unknown default: return .unknown
        }
    }
}

public struct LoadTimes: Codable, Equatable, Sendable {
    /// Compile (for an .mlpackage) plus the first load with the job's compute units.
    public let cold: Double
    /// A second load of the compiled model, with the OS's device-specific caches warm.
    public let warm: Double

    enum CodingKeys: String, CodingKey {
        case cold
        case warm
    }
}

public struct MemoryReport: Codable, Equatable, Sendable {
    public let peakPhysFootprintMB: Double
    public let baselinePhysFootprintMB: Double
    /// Minimum of os_proc_available_memory(); nil (JSON null) where the call does not exist (macOS).
    public let minAvailableMB: Double?
    /// [milliseconds since harness start, phys_footprint MB]
    public let samples: [[Double]]

    enum CodingKeys: String, CodingKey {
        case peakPhysFootprintMB = "peak_phys_footprint_mb"
        case baselinePhysFootprintMB = "baseline_phys_footprint_mb"
        case minAvailableMB = "min_available_mb"
        case samples
    }

    // By hand for the same reason as HarnessResult: `min_available_mb` is required, null on macOS.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(peakPhysFootprintMB, forKey: .peakPhysFootprintMB)
        try c.encode(baselinePhysFootprintMB, forKey: .baselinePhysFootprintMB)
        try c.encode(minAvailableMB, forKey: .minAvailableMB)
        try c.encode(samples, forKey: .samples)
    }
}
