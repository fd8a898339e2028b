"""Which Dramatiq broker the settings choose (Redis by default, RabbitMQ by URL, else the
in-process one), how a wrong choice is refused, and what doctor says of an unreachable one.
No RabbitMQ server runs here: the RabbitMQ side is selection, validation and a refused port."""

from __future__ import annotations

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from pika.exceptions import AMQPConnectionError

from bot import cli_doctor, doctor_checks
from engine import broker
from engine.settings import Settings, SettingsError, load
from tests.conftest import REDIS_URL
from tests.smtp_peer import free_port, smtp_peer


def test_redis_url_means_redis_and_nothing_means_in_process() -> None:
    redis_broker = broker.build(Settings(redis_url=REDIS_URL))
    try:
        assert isinstance(redis_broker, RedisBroker)
        assert broker.setting_name(Settings(redis_url=REDIS_URL)) == "REDIS_URL"
    finally:
        redis_broker.close()
    assert isinstance(broker.build(Settings()), StubBroker)
    assert broker.setting_name(Settings()) is None


def test_rabbitmq_url_means_rabbitmq_without_connecting() -> None:
    port = free_port()  # nothing listens: building must not connect
    settings = Settings(rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{port}/%2F")

    made = broker.build(settings)

    assert isinstance(made, RabbitmqBroker)
    assert broker.setting_name(settings) == "RABBITMQ_URL"
    assert made.parameters.port == port  # type: ignore[union-attr]
    made.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"RABBITMQ_URL": "amqp://127.0.0.1/", "REDIS_URL": REDIS_URL},
            "RABBITMQ_URL: Value error, REDIS_URL is set too: set one broker, not both",
        ),
        (
            {"RABBITMQ_URL": "http://127.0.0.1:5672/"},
            "RABBITMQ_URL: Value error, must start with amqp:// or amqps://",
        ),
    ],
)
def test_a_wrong_broker_setting_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError) as raised:
        load()

    assert str(raised.value) == message


def test_an_empty_rabbitmq_url_is_no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_URL", "")

    assert load().rabbitmq_url is None


def test_ping_of_an_unreachable_rabbitmq_raises() -> None:
    made = broker.build(Settings(rabbitmq_url=f"amqp://127.0.0.1:{free_port()}/"))

    with pytest.raises(AMQPConnectionError):
        broker.ping(made, timeout=2)
    made.close()


def test_doctor_says_in_plain_words_that_rabbitmq_is_unreachable() -> None:
    port = free_port()
    settings = Settings(rabbitmq_url=f"amqp://workflowbot:rabbit-pass-31@127.0.0.1:{port}/")

    check = doctor_checks.check_broker(settings)

    assert check.status == "FAIL"
    assert check.message == (
        f"RabbitMQ (RABBITMQ_URL): nothing accepts connections on 127.0.0.1:{port} "
        "(connection refused): is it running?"
    )
    assert "rabbit-pass-31" in cli_doctor.secrets_of(settings)


def test_doctor_pings_redis_through_the_broker(redis_client: object) -> None:
    check = doctor_checks.check_broker(Settings(redis_url=REDIS_URL))

    assert check.status == "ok"
    assert check.message.startswith("Redis at 127.0.0.1:6379 answers")


def test_doctor_fails_a_server_that_does_not_speak_amqp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_checks, "TIMEOUT", 1.0)
    with smtp_peer() as peer:  # something listens, but it is not RabbitMQ
        check = doctor_checks.check_broker(Settings(rabbitmq_url=f"amqp://127.0.0.1:{peer.port}/"))

    assert check.status == "FAIL"
    assert check.message == (
        f"RabbitMQ at 127.0.0.1:{peer.port} does not answer: no AMQP handshake within 1 s "
        "(is it RabbitMQ, on its AMQP port?); check RABBITMQ_URL"
    )
