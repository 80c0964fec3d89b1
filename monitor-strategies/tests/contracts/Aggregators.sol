// SPDX-License-Identifier: Apache-2.0
// Small stand-ins for Chainlink's price-feed contracts, with the functions and events PANIC's
// Chainlink contracts monitor reads (same signatures as fixtures/chainlink/abi/*.json), for the
// monitor-strategies tests on a local EVM node. Not Chainlink's code: just enough behaviour.
pragma solidity ^0.8.19;

/// Contract version 3 (FluxAggregator-like): oracles submit per round; a round has an answer once
/// `minSubmissions` oracles submitted (the average); before that `getRoundData` reverts.
contract TestFluxAggregator {
    event SubmissionReceived(int256 indexed submission, uint32 indexed round, address indexed oracle);

    struct Round {
        int256 answer;
        uint256 startedAt;
        uint256 updatedAt;
        uint80 answeredInRound;
    }

    address[] private oracles;
    uint32 public minSubmissions;
    string public description;
    uint256 public paymentPerSubmission;
    uint32 private latestAnswered;
    mapping(uint32 => Round) private rounds;
    mapping(uint32 => int256[]) private submissions;
    mapping(address => uint256) private payments;

    constructor(address[] memory _oracles, uint32 _minSubmissions, string memory _description,
                uint256 _paymentPerSubmission) {
        oracles = _oracles;
        minSubmissions = _minSubmissions;
        description = _description;
        paymentPerSubmission = _paymentPerSubmission;
    }

    function getOracles() external view returns (address[] memory) {
        return oracles;
    }

    function withdrawablePayment(address _oracle) external view returns (uint256) {
        return payments[_oracle];
    }

    function submit(uint256 _roundId, int256 _submission) external {
        bool known = false;
        for (uint256 i = 0; i < oracles.length; i++) {
            if (oracles[i] == msg.sender) known = true;
        }
        require(known, "not an oracle");
        uint32 id = uint32(_roundId);
        if (rounds[id].startedAt == 0) rounds[id].startedAt = block.timestamp;
        submissions[id].push(_submission);
        payments[msg.sender] += paymentPerSubmission;
        emit SubmissionReceived(_submission, id, msg.sender);
        if (submissions[id].length >= minSubmissions) {
            int256 sum = 0;
            for (uint256 i = 0; i < submissions[id].length; i++) sum += submissions[id][i];
            rounds[id].answer = sum / int256(submissions[id].length);
            rounds[id].updatedAt = block.timestamp;
            rounds[id].answeredInRound = id;
            if (id > latestAnswered) latestAnswered = id;
        }
    }

    function getRoundData(uint80 _roundId)
        public view returns (uint80, int256, uint256, uint256, uint80)
    {
        Round memory r = rounds[uint32(_roundId)];
        require(r.updatedAt > 0, "No data present");
        return (_roundId, r.answer, r.startedAt, r.updatedAt, r.answeredInRound);
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        if (latestAnswered == 0) return (0, 0, 0, 0, 0);
        return getRoundData(latestAnswered);
    }
}

/// Contract version 4 (OCR-like): a transmitter reports every observation of a round at once;
/// `observers[i]` is the transmitter index of the node that made `observations[i]`.
contract TestOffchainAggregator {
    event NewTransmission(uint32 indexed aggregatorRoundId, int192 answer, address transmitter,
                          int192[] observations, bytes observers, bytes32 rawReportContext);

    struct Round {
        int192 answer;
        uint64 timestamp;
    }

    address private owner;
    address[] private s_transmitters;
    uint32 private latestRound;
    mapping(uint32 => Round) private rounds;
    mapping(address => uint256) private owed;

    constructor(address[] memory _transmitters) {
        owner = msg.sender;
        s_transmitters = _transmitters;
    }

    function transmitters() external view returns (address[] memory) {
        return s_transmitters;
    }

    function setTransmitters(address[] calldata _transmitters) external {
        require(msg.sender == owner, "only owner");
        s_transmitters = _transmitters;
    }

    function owedPayment(address _transmitter) external view returns (uint256) {
        return owed[_transmitter];
    }

    /// `observations` sorted; the answer is the median.
    function transmit(int192[] calldata observations, bytes calldata observers) external {
        bool known = false;
        for (uint256 i = 0; i < s_transmitters.length; i++) {
            if (s_transmitters[i] == msg.sender) known = true;
        }
        require(known, "not a transmitter");
        require(observations.length > 0 && observations.length == observers.length, "bad report");
        latestRound++;
        int192 median = observations[observations.length / 2];
        rounds[latestRound] = Round(median, uint64(block.timestamp));
        for (uint256 i = 0; i < observers.length; i++) {
            owed[s_transmitters[uint8(observers[i])]] += 1e15;
        }
        emit NewTransmission(latestRound, median, msg.sender, observations, observers,
                             bytes32(uint256(latestRound)));
    }

    function getRoundData(uint80 _roundId)
        public view returns (uint80, int256, uint256, uint256, uint80)
    {
        Round memory r = rounds[uint32(_roundId)];
        require(r.timestamp > 0, "No data present");
        return (_roundId, r.answer, r.timestamp, r.timestamp, _roundId);
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        if (latestRound == 0) return (0, 0, 0, 0, 0);
        return getRoundData(latestRound);
    }
}

/// EACAggregatorProxy-like: the aggregator behind a feed and its description.
contract TestAggregatorProxy {
    address public aggregator;
    string public description;

    constructor(address _aggregator, string memory _description) {
        aggregator = _aggregator;
        description = _description;
    }
}
