import json

import pytest

from watchkeeper.config import Settings, load_settings
from watchkeeper.errors import ConfigError


def test_defaults_without_any_source(tmp_path):
    settings = load_settings(env={}, dotenv=tmp_path / "absent.env")
    assert settings.media.frame_interval_s == 1.0
    assert settings.event.security_level == "medium"
    assert settings.default_provider == "local"


def test_seed000_config_json_is_accepted(tmp_path):
    config = {
        "gemini": "G-KEY", "openai": "O-KEY", "default_provider": "gemini",
        "notification": {"smtp_server": "smtp.example.com", "port": 465, "username": "u", "password": "p",
                         "sender_email": "a@example.com", "default_recipients": ["s@example.com"],
                         "notify_threshold": "medium"},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    settings = load_settings(path, env={})
    assert settings.providers["gemini"].api_key == "G-KEY"
    assert settings.providers["openai"].api_key == "O-KEY"
    assert settings.default_provider == "gemini"
    assert settings.notification.default_recipients == ["s@example.com"]


def test_yaml_toml_and_precedence(tmp_path):
    (tmp_path / "s.yaml").write_text("media:\n  frame_interval_s: 2\nevent:\n  venue_capacity: 50\n")
    (tmp_path / "s.toml").write_text("[media]\nframe_interval_s = 3\n")
    (tmp_path / ".env").write_text("WATCHKEEPER_EVENT__VENUE_CAPACITY=70\n")
    assert load_settings(tmp_path / "s.toml", env={}).media.frame_interval_s == 3
    settings = load_settings(tmp_path / "s.yaml", env={"VENUE_CAPACITY": "90"}, dotenv=tmp_path / ".env")
    assert settings.media.frame_interval_s == 2  # from the file
    assert settings.event.venue_capacity == 90  # environment beats .env beats the file


def test_environment_nesting_and_seed_aliases():
    env = {
        "WATCHKEEPER_MEDIA__FRAME_INTERVAL_S": "0.5",
        "WATCHKEEPER_FUSION__THRESHOLDS": '{"assault": 0.7}',
        "WATCHKEEPER_ANALYZERS__SPEECH__MODEL": "base",
        "ANALYSIS_INTERVAL": "3",  # the explicit WATCHKEEPER_ name wins over the seed alias
        "HIGH_PRIORITY_THRESHOLD": "3", "SECURITY_LEVEL": "high", "EVENT_TYPE": "concert",
        "GROQ_API_KEY": "gk", "DATABASE_URL": "sqlite:///x.db",
    }
    s = load_settings(env=env, dotenv=None)
    assert s.media.frame_interval_s == 0.5
    assert s.fusion.thresholds == {"assault": 0.7}
    assert s.analyzers.speech.model == "base"
    assert s.fusion.high_priority_severity == 3
    assert (s.event.security_level, s.event.type) == ("high", "concert")
    assert s.providers["groq"].api_key == "gk"
    assert s.database_url == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WATCHKEEPER_EVENT__SECURITY_LEVEL": "ultra"}, "event.security_level"),
        ({"WATCHKEEPER_NO_SUCH_KEY": "1"}, "no_such_key"),
        ({"WATCHKEEPER_MEDIA__FRAME_INTERVAL_S": "-1"}, "media.frame_interval_s"),
        ({"WATCHKEEPER_FUSION__THRESHOLDS": '{"nonsense": 0.5}'}, "fusion.thresholds"),
        ({"WATCHKEEPER_ANALYZERS__SPEECH__MODEL": "large"}, "analyzers.speech.model"),
    ],
)
def test_bad_values_name_the_key(env, named):
    with pytest.raises(ConfigError) as caught:
        load_settings(env=env, dotenv=None)
    assert named in str(caught.value)


def test_allowed_values_are_listed():
    with pytest.raises(ConfigError, match="'low', 'medium', 'high' or 'maximum'"):
        load_settings(env={"SECURITY_LEVEL": "ultra"}, dotenv=None)


def test_bad_file_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("media: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, env={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml", env={})
    with pytest.raises(ConfigError, match="unknown format"):
        (tmp_path / "s.ini").write_text("x")
        load_settings(tmp_path / "s.ini", env={})


def test_user_categories_can_be_referenced():
    settings = Settings.model_validate({
        "categories": [{"id": "drone", "name": "Drone", "description": "A drone flies over the crowd.",
                        "default_severity": 3}],
        "fusion": {"thresholds": {"drone": 0.4}},
    })
    assert settings.fusion.thresholds["drone"] == 0.4


def test_analysis_hash_tracks_only_what_changes_results():
    a, b = Settings(), Settings()
    assert a.analysis_hash() == b.analysis_hash()
    b.providers = {"gemini": {"api_key": "x"}}
    assert a.analysis_hash() == b.analysis_hash()
    b.media.frame_interval_s = 2
    assert a.analysis_hash() != b.analysis_hash()
