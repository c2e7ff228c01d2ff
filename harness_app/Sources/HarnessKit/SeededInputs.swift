import CoreML
import Foundation

/// SplitMix64, exactly as `orchestrator/harness/inputs.py`: state_i = seed + (i + 1) * gamma (mod 2^64),
/// then two xor-shift-multiply rounds and a final xor-shift.
public struct SplitMix64 {
    public static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15
    public static let m1: UInt64 = 0xBF58_476D_1CE4_E5B9
    public static let m2: UInt64 = 0x94D0_49BB_1331_11EB

    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= SplitMix64.gamma
        var z = state
        z = (z ^ (z >> 30)) &* SplitMix64.m1
        z = (z ^ (z >> 27)) &* SplitMix64.m2
        return z ^ (z >> 31)
    }
}

/// The seeded model inputs of a job, identical to `make_input` in Python so PSNR compares like with like.
///
/// Floats: Box-Muller on consecutive pairs in Double, then one rounding to the input dtype (as numpy's
/// `astype` does; Float16 is converted from Double directly, never through Float, to avoid double rounding).
/// The integer stream is bit-exact by construction; the floats are too unless two libms disagree in the last
/// Double bit right at a Float rounding boundary (vanishingly rare, and the golden tests would show it).
public enum SeededInputs {
    public static let defaultIntHigh: UInt64 = 1000

    public static func standardNormal(seed: UInt64, count: Int) -> [Double] {
        var rng = SplitMix64(seed: seed)
        var values: [Double] = []
        values.reserveCapacity(count + 1)
        while values.count < count {
            let u1 = Double((rng.next() >> 11) + 1) * 0x1p-53  // (0, 1]: log(u1) is finite
            let u2 = Double(rng.next() >> 11) * 0x1p-53
            let radius = (-2.0 * log(u1)).squareRoot()
            values.append(radius * cos(2.0 * Double.pi * u2))
            values.append(radius * sin(2.0 * Double.pi * u2))
        }
        return Array(values.prefix(count))
    }

    public static func integers(seed: UInt64, count: Int, high: UInt64) -> [Int32] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in Int32(truncatingIfNeeded: rng.next() % high) }
    }

    public static func multiArray(for input: JobInput) -> MLMultiArray {
        let count = input.shape.reduce(1, *)
        switch input.dtype {
        case .float32:
            let values = standardNormal(seed: input.seed, count: count).map { Float($0) }
            return MLMultiArray(MLShapedArray(scalars: values, shape: input.shape))
        case .float16:
            let values = standardNormal(seed: input.seed, count: count).map { Float16($0) }
            return MLMultiArray(MLShapedArray(scalars: values, shape: input.shape))
        case .int32:
            let values = integers(seed: input.seed, count: count, high: input.high ?? defaultIntHigh)
            return MLMultiArray(MLShapedArray(scalars: values, shape: input.shape))
        }
    }

    public static func features(for inputs: [JobInput]) throws -> MLDictionaryFeatureProvider {
        var arrays: [String: MLMultiArray] = [:]
        for input in inputs {
            arrays[input.name] = multiArray(for: input)
        }
        return try MLDictionaryFeatureProvider(dictionary: arrays)
    }
}
