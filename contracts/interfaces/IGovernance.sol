// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title Governance module, a native module at 0x0000000000000000000000000000000000001001.
/// @notice Rules and parameters: docs/staking.md. Proposing needs stake and a deposit of at least
/// `proposal_deposit` wei as msg.value. Answers: 0 yes, 1 no, 2 abstain. Kinds: 0 transfer from
/// the community pool, 1 parameter change, 2 software upgrade, 3 text. Status: 0 voting,
/// 1 passed, 2 rejected, 3 expired, 4 failed (passed but could not be carried out).
interface IGovernance {
    event Proposed(uint256 indexed id, address indexed proposer, uint8 kind, uint256 expireHeight);
    event Voted(uint256 indexed id, address indexed voter, uint8 answer);

    function proposeTransferFund(address to, uint256 amount, string calldata reason)
        external
        payable
        returns (uint256 id);

    /// Change parameter `name` to `value` at the end of block `height` (or when passed, if later).
    function proposeChangeParam(string calldata name, uint256 value, uint256 height)
        external
        payable
        returns (uint256 id);

    /// Nodes whose version is not `version` stop before block `height`.
    function proposeUpgrade(string calldata name, string calldata version, uint256 height)
        external
        payable
        returns (uint256 id);

    function proposeText(string calldata title, string calldata text) external payable returns (uint256 id);

    function vote(uint256 id, uint8 answer) external;

    function proposal(uint256 id)
        external
        view
        returns (
            uint8 kind,
            address proposer,
            uint8 status,
            uint256 startHeight,
            uint256 expireHeight,
            uint256 yes,
            uint256 no,
            uint256 abstain
        );

    /// The current value of a parameter (docs/staking.md lists them).
    function param(string calldata name) external view returns (uint256);

    /// The community pool's balance.
    function communityPool() external view returns (uint256);
}
