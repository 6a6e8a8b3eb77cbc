"""Python confo's README examples, unchanged: sales/analytics on files, systemA/systemB on
ZooKeeper, and the seed's Redis example with its note."""

import json

from confo.Confo import Confo
import confo.Backends as BE


def test_file_backend_walkthrough(configurations, unique):
    (configurations / "sales").mkdir()
    (configurations / "sales" / "database.json").write_text(json.dumps({"host": "127.0.0.1", "port": 5432}))
    config = Confo()
    config.load_backend(credentials={"config_path": str(configurations)}, name=unique, backend_type=BE.FILE_BACKEND)
    assert unique in config.get_backends()["all_backends"]
    config.activate_backend(unique)
    assert config.get_backends()["active_backend"] == unique
    assert config.get_namespaces() == {"all_namespaces": ["sales"], "current_namespace": "*"}
    config.create_namespace("analytics")
    config.use_namespace("sales")
    assert config.get_namespaces()["current_namespace"] == "sales"
    assert config.get("database") == {"host": "127.0.0.1", "port": 5432}
    assert config.get("database", "port") == 5432
    config.set("sale_report", "title", "Quarterly")  # a session-only configuration
    assert config.get_count() == 2
    assert not (configurations / "sales" / "sale_report.json").exists()
    config.use_namespace("analytics")
    config.set("dashboard", {"refresh": 30}, None)
    config.use_namespace("sales")
    assert config.get("sale_report", "title") == "Quarterly", "kept across namespace switches"
    config.persist(namespace="sales", config="sale_report")
    assert json.loads((configurations / "sales" / "sale_report.json").read_text()) == {"title": "Quarterly"}
    assert not (configurations / "analytics" / "dashboard.json").exists()
    config.persist(namespace="analytics")
    assert json.loads((configurations / "analytics" / "dashboard.json").read_text()) == {"refresh": 30}
    config.set("database", "port", 6432)
    config.persist()
    assert json.loads((configurations / "sales" / "database.json").read_text())["port"] == 6432
    config.reload()
    assert config.get_all() == {"database": {"host": "127.0.0.1", "port": 6432}, "sale_report": {"title": "Quarterly"}}


def test_zookeeper_walkthrough(zk_server, unique):
    host, port = zk_server.host_port
    config = Confo()
    config.load_backend(
        credentials={"zookeeper_host": host, "zookeeper_port": port}, name=unique, backend_type=BE.ZOOKEEPER_BACKEND
    )
    config.activate_backend(unique)
    systems = ["systemA_" + unique, "systemB_" + unique]
    for system in systems:
        config.create_namespace(system)
    assert set(systems) <= set(config.get_namespaces()["all_namespaces"])
    config.use_namespace(systems[0])
    config.set("database", "host", "db-a")
    config.use_namespace(systems[1])
    config.set("database", "host", "db-b")
    config.persist()
    config.use_namespace(systems[0])
    assert config.get("database", "host") == "db-a"
    config.use_namespace(systems[1])
    assert config.get("database") == {"host": "db-b"}


def test_the_seeds_redis_example(redis_server, unique):
    host, port = redis_server.host_port
    # Import necessary modules
    from confo.Confo import Confo
    import confo.Backends as BE

    # Create a confo Instance
    config = Confo()

    # define your redis credentials
    cred = {
        "redis_host": host,
        "redis_port": port,
    }

    # Load the Redis backend, give it a name of your choosing, it has to be unique
    config.load_backend(credentials=cred, name="redis_backend" + unique, backend_type=BE.REDIS_BACKEND)

    config.activate_backend("redis_backend" + unique)
    config.create_namespace("HR_dept")
    config.use_namespace("HR_dept")
    config.set("database", "admins", ["tshepang.maila@sambeconsulting.com", "kabelo.masemola@sambe.co.za"])
    config.persist()
    assert config.get("database", "admins")[1] == "kabelo.masemola@sambe.co.za"
    config.delete_namespace("HR_dept", force=True)


def test_the_seeds_note_redis_credentials_kept_in_files(redis_server, configurations, unique):
    host, port = redis_server.host_port
    (configurations / "infra").mkdir()
    (configurations / "infra" / "redis.json").write_text(json.dumps({"redis_host": host, "redis_port": port}))
    config = Confo()
    config.load_backend(credentials={"config_path": str(configurations)}, name="files" + unique, backend_type=BE.FILE_BACKEND)
    config.activate_backend("files" + unique)
    config.use_namespace("infra")
    # "use Confo itself to create the redis backend"
    config.load_backend(credentials=config.get("redis"), name="redis" + unique, backend_type=BE.REDIS_BACKEND)
    config.activate_backend("redis" + unique)
    assert "all_namespaces" in config.get_namespaces()
    # The same, in one call.
    config.load_backend_from("redis2" + unique, BE.REDIS_BACKEND, "files" + unique, "infra", "redis")
    assert "redis2" + unique in config.get_backends()["all_backends"]
