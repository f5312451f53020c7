// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "../interfaces/IStaking.sol";
import "../interfaces/IGovernance.sol";

/// @title A contract that stakes and governs through the native modules (tests of composability).
/// @notice Stakes its own balance: fund it at deployment or by plain transfers. Module calls
/// revert with the module's reason unless caught (`tryDelegate`).
contract StakingClient {
    IStaking public constant STAKING = IStaking(0x0000000000000000000000000000000000001000);
    IGovernance public constant GOVERNANCE = IGovernance(0x0000000000000000000000000000000000001001);

    /// Wei this contract delegated through `delegate` (its own bookkeeping, rolled back with it).
    uint256 public delegated;
    uint256 public lastProposal;

    event ClientDelegated(address indexed candidate, uint256 amount, uint256 shares);
    event ModuleRefused(string reason);

    constructor() payable {}

    receive() external payable {}

    /// Delegate `amount` of this contract's balance to `candidate`.
    function delegate(address candidate, uint256 amount) external {
        STAKING.delegate{value: amount}(candidate);
        delegated += amount;
        emit ClientDelegated(candidate, amount, sharesOn(candidate));
    }

    /// Start unbonding `amount` of this contract's stake on `candidate`.
    function withdraw(address candidate, uint256 amount) external {
        STAKING.withdraw(candidate, amount);
    }

    /// Delegate, then revert: nothing of it (module state, balances, logs) may remain.
    function delegateThenRevert(address candidate, uint256 amount) external {
        STAKING.delegate{value: amount}(candidate);
        delegated += amount;
        revert("StakingClient: rolled back");
    }

    /// Delegate and report the module's refusal instead of reverting.
    function tryDelegate(address candidate, uint256 amount) external returns (bool ok, string memory reason) {
        try STAKING.delegate{value: amount}(candidate) {
            delegated += amount;
            return (true, "");
        } catch Error(string memory why) {
            emit ModuleRefused(why);
            return (false, why);
        }
    }

    /// This contract's delegation on `candidate`, read with a STATICCALL from a view.
    function myDelegation(address candidate)
        external
        view
        returns (
            uint256 delegateAmount,
            uint256 awardAmount,
            uint256 withdrawAmount,
            uint256 slashAmount,
            uint256 compRate,
            uint256 votingPower
        )
    {
        return STAKING.delegation(candidate, address(this));
    }

    /// The shares of this contract's delegation on `candidate` (0 if none).
    function sharesOn(address candidate) public view returns (uint256) {
        (uint256 d, uint256 a, uint256 w, uint256 s,,) = STAKING.delegation(candidate, address(this));
        return d + a - w - s;
    }

    /// A view combining several module reads, dynamic arrays included.
    function overview() external view returns (uint256 totalStake, uint256 validatorCount, uint256 backupCount) {
        return (STAKING.totalStake(), STAKING.validators().length, STAKING.backups().length);
    }

    /// A governance parameter, read from a view.
    function param(string calldata name) external view returns (uint256) {
        return GOVERNANCE.param(name);
    }

    /// Try a state-changing module call under STATICCALL from a view: the module must refuse.
    /// Returns the call's success flag and its return (revert) data.
    function writeFromView(address candidate) external view returns (bool ok, bytes memory data) {
        return address(STAKING).staticcall(abi.encodeCall(IStaking.withdraw, (candidate, 1)));
    }

    /// Propose a text proposal with a deposit of `deposit` wei of this contract's balance.
    function proposeText(string calldata title, string calldata text, uint256 deposit)
        external
        returns (uint256 id)
    {
        id = GOVERNANCE.proposeText{value: deposit}(title, text);
        lastProposal = id;
    }

    /// Propose a parameter change with a deposit of `deposit` wei of this contract's balance.
    function proposeChangeParam(string calldata name, uint256 value, uint256 height, uint256 deposit)
        external
        returns (uint256 id)
    {
        id = GOVERNANCE.proposeChangeParam{value: deposit}(name, value, height);
        lastProposal = id;
    }

    function vote(uint256 id, uint8 answer) external {
        GOVERNANCE.vote(id, answer);
    }

    /// Status of proposal `id` (0 voting, 1 passed, 2 rejected, 3 expired, 4 failed).
    function proposalStatus(uint256 id) external view returns (uint8 status) {
        (, , status,,,,,) = GOVERNANCE.proposal(id);
    }
}
