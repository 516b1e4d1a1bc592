"""Deployment ids: shape and creation-time order."""

import itertools

from xds_server.ids import ID_LENGTH, DeploymentIdGenerator, is_deployment_id


class TestDeploymentIdGenerator:
    def test_shape(self) -> None:
        """Ids are 25 lowercase alphanumerics starting with c, like cuid's."""
        new_id = DeploymentIdGenerator()
        for _ in range(100):
            value = new_id()
            assert len(value) == ID_LENGTH
            assert is_deployment_id(value), value
        assert is_deployment_id("cm9n46thy000bwe6y784y4j0l")

    def test_sorted_by_creation_within_one_millisecond(self) -> None:
        """A counter orders ids made in the same millisecond."""
        new_id = DeploymentIdGenerator(clock_ms=lambda: 1_700_000_000_000)
        ids = [new_id() for _ in range(500)]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)

    def test_sorted_when_the_clock_steps_back(self) -> None:
        """A clock that goes backwards never makes an id sort before an older one."""
        times = itertools.chain([5_000, 6_000, 4_000, 4_000, 7_000])
        new_id = DeploymentIdGenerator(clock_ms=lambda: next(times))
        ids = [new_id() for _ in range(5)]
        assert ids == sorted(ids)

    def test_later_millisecond_sorts_later(self) -> None:
        """The time part leads, so ids from a later millisecond sort after."""
        times = iter([1_000, 2_000])
        new_id = DeploymentIdGenerator(clock_ms=lambda: next(times))
        first, second = new_id(), new_id()
        assert first < second
        assert first[1:9] < second[1:9]

    def test_rejects_other_shapes(self) -> None:
        """Uppercase, wrong length or a wrong first letter are not ids."""
        others = (
            "",
            "CM9N46THY000BWE6Y784Y4J0L",
            "cm9n46thy000bwe6y784y4j0",
            "xm9n46thy000bwe6y784y4j0l",
        )
        for value in others:
            assert not is_deployment_id(value)
