// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title Staking module, a native module at 0x0000000000000000000000000000000000001000.
/// @notice Rules, units and parameters: docs/staking.md. Amounts are wei; comp rates are
/// 18-decimal fixed point (1e18 = 100%). Failing calls revert with a reason string.
interface IStaking {
    struct Description {
        string name;
        string website;
        string location;
        string email;
        string profile;
    }

    event CandidacyDeclared(address indexed candidate, bytes32 pubKey, uint256 maxAmount, uint256 compRate);
    event CandidacyUpdated(address indexed candidate, bytes32 pubKey, uint256 maxAmount, uint256 compRate);
    event CandidacyWithdrawn(address indexed candidate);
    event CandidacyActivated(address indexed candidate, bool active);
    event CandidacyVerified(address indexed candidate, bool verified);
    event Delegated(address indexed delegator, address indexed candidate, uint256 amount);
    event Withdrawn(address indexed delegator, address indexed candidate, uint256 amount, uint256 matureHeight);
    event CompRateSet(address indexed candidate, address indexed delegator, uint256 compRate);
    event BeaconCommitted(address indexed candidate, bytes32 commitment);

    /// Become a candidate; msg.value must be the self-stake, maxAmount * self_staking_ratio / 10000.
    function declareCandidacy(bytes32 pubKey, uint256 maxAmount, uint256 compRate, Description calldata description)
        external
        payable;

    /// Change key, max amount, comp rate, description; raising maxAmount needs the extra self-stake as msg.value.
    function updateCandidacy(bytes32 pubKey, uint256 maxAmount, uint256 compRate, Description calldata description)
        external
        payable;

    /// Stop being a candidate: every delegation, the self-stake included, starts unbonding.
    function withdrawCandidacy() external;

    /// Rejoin the election (refused while jailed).
    function activateCandidacy() external;

    /// Leave the election, keeping the candidacy and its delegations.
    function deactivateCandidacy() external;

    /// Mark a candidate verified or not; only the `verifier` parameter's address.
    function verifyCandidacy(address candidate, bool verified) external;

    /// Stake msg.value on an active candidate.
    function delegate(address candidate) external payable;

    /// Start unbonding `amount` of the caller's stake on `candidate`; it returns after unstake_waiting_period blocks.
    function withdraw(address candidate, uint256 amount) external;

    /// The caller (a candidate) sets the comp rate of one of its delegations, at most its own rate.
    function setCompRate(address delegator, uint256 compRate) external;

    /// The caller (a candidate) registers the tip of its hash onion for the random beacon (docs/beacon.md);
    /// it takes effect 64 blocks later, replacing the current one. bytes32(0) withdraws the commitment.
    function setBeaconCommitment(bytes32 commitment) external;

    function candidate(address candidate)
        external
        view
        returns (
            bytes32 pubKey,
            uint256 maxAmount,
            uint256 compRate,
            uint256 shares,
            uint256 votingPower,
            bool active,
            bool verified,
            uint256 jailedUntil
        );

    function delegation(address candidate, address delegator)
        external
        view
        returns (
            uint256 delegateAmount,
            uint256 awardAmount,
            uint256 withdrawAmount,
            uint256 slashAmount,
            uint256 compRate,
            uint256 votingPower
        );

    /// The validators of the current epoch, by power, highest first.
    function validators() external view returns (address[] memory);

    /// The backups drawn for the current epoch, in draw order.
    function backups() external view returns (address[] memory);

    /// The shares of all candidates.
    function totalStake() external view returns (uint256);
}
