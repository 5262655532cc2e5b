"""The console worklist API [MWL-4]-[MWL-7]: search, colours, delete rules, reset, clear,
create and edit, .wl import."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from tests.worklist.conftest import make_procedure
from worklist.choices import StepStatus
from worklist.models import RequestedProcedure, ScheduledProcedureStep, StepStatusChange

pytestmark = pytest.mark.django_db

S, P, C, D, M, X = (
    StepStatus.SCHEDULED,
    StepStatus.IN_PROGRESS,
    StepStatus.COMPLETED,
    StepStatus.DISCONTINUED,
    StepStatus.MISSED,
    StepStatus.CANCELED,
)


def _accessions(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["accession_number"] for row in response.json()["results"]]


def test_it_lists_procedures_with_the_study_list_search(api):
    make_procedure(patient_name="SMITH^JOHN", patient_id="P100", accession_number="A1")
    make_procedure(patient_name="SMYTHE^ANN", patient_id="P200", accession_number="A2")
    make_procedure(patient_name="Ødegård^Åse", patient_id="X300", accession_number="B3")

    def search(text: str, field: str = "patient_name") -> list[str]:
        params = {"ordering": "accession_number", "search": text, "search_field": field}
        return _accessions(api.get("/api/worklist/procedures/", params))

    assert search("sm") == ["A1", "A2"]
    assert search("*yth") == ["A2"]
    assert search("sm?th^*") == ["A1"]
    assert search("ødeg") == ["B3"]
    assert search("P", "patient_id") == ["A1", "A2"]
    assert search("b3", "accession_number") == ["B3"]


def test_it_filters_by_step_modality_and_start_date(api):
    today = timezone.localdate()
    make_procedure(accession_number="CT-TODAY", modality="CT", start_date=today)
    make_procedure(
        accession_number="MR-OLD", modality="MR", start_date=today - datetime.timedelta(days=40)
    )
    url = "/api/worklist/procedures/?ordering=accession_number"
    assert _accessions(api.get(url + "&modality=MR")) == ["MR-OLD"]
    assert _accessions(api.get(url + "&modality=CT,MR")) == ["CT-TODAY", "MR-OLD"]
    assert _accessions(api.get(url + "&date=today")) == ["CT-TODAY"]
    assert _accessions(api.get(url + "&date=last_year")) == ["CT-TODAY", "MR-OLD"]
    old = (today - datetime.timedelta(days=40)).isoformat()
    assert _accessions(api.get(url + f"&start_date={old}")) == ["MR-OLD"]
    assert _accessions(api.get(url + f"&date_to={old}")) == ["MR-OLD"]


def test_it_sorts_by_any_column_both_ways(api):
    make_procedure(patient_name="B", accession_number="2")
    make_procedure(patient_name="a", accession_number="1")
    make_procedure(patient_name="C", accession_number="3")
    assert _accessions(api.get("/api/worklist/procedures/?ordering=patient_name")) == [
        "1",
        "2",
        "3",
    ]
    assert _accessions(api.get("/api/worklist/procedures/?ordering=-patient_name")) == [
        "3",
        "2",
        "1",
    ]


def test_it_refuses_bad_search_parameters_with_the_error_body(api):
    response = api.get("/api/worklist/procedures/?ordering=nope&modality=C-T")
    assert response.status_code == 400
    body = response.json()
    assert set(body["errors"]) == {"ordering", "modality"}
    assert body["message"].startswith("Invalid input")


@pytest.mark.parametrize(
    ("statuses", "colour"),
    [
        ((C, C), "green"),
        ((C, M), "orange"),
        ((D,), "orange"),
        ((X, C), "orange"),
        ((C, S), "none"),
        ((M, P), "none"),
        ((S,), "none"),
    ],
)
def test_it_marks_each_procedure_with_its_colour(api, statuses, colour):
    procedure = make_procedure(statuses=statuses)
    listed = api.get("/api/worklist/procedures/").json()["results"]
    assert [row["colour"] for row in listed] == [colour]
    assert api.get(f"/api/worklist/procedures/{procedure.pk}/").json()["colour"] == colour
    filtered = api.get(f"/api/worklist/procedures/?colour={colour}").json()["count"]
    assert filtered == 1


def test_it_lists_the_steps_of_a_procedure_in_schedule_order(api):
    procedure = make_procedure(statuses=(S,))
    api.post(
        f"/api/worklist/procedures/{procedure.pk}/steps/",
        {"modality": "MR", "station_ae_title": "MR1", "start_date": "2026-12-01"},
        format="json",
    )
    steps = api.get(f"/api/worklist/procedures/{procedure.pk}/steps/").json()
    assert [step["modality"] for step in steps] == ["MR", "CT"]
    assert all(step["step_id"] for step in steps)


def test_the_list_costs_a_fixed_number_of_queries(api, django_assert_max_num_queries):
    for number in range(20):
        make_procedure(accession_number=f"A{number}", statuses=(S, C))
    with django_assert_max_num_queries(3):
        assert api.get("/api/worklist/procedures/?page_size=50").json()["count"] == 20


def test_it_creates_a_procedure_with_steps_and_generates_the_study_uid(api):
    response = api.post(
        "/api/worklist/procedures/",
        {
            "patient_name": "ROE^RICHARD",
            "patient_id": "R1",
            "patient_sex": "M",
            "patient_weight": 81.5,
            "pregnancy_status": 4,
            "accession_number": "ACC-9",
            "study_instance_uid": ":SERVER",
            "steps": [{"modality": "CT", "station_ae_title": "CT1\\CT2", "start_time": "083000"}],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    procedure = RequestedProcedure.objects.get(pk=response.json()["id"])
    assert procedure.study_instance_uid.count(".") > 3
    assert procedure.steps.get().station_ae_title == "CT1\\CT2"
    assert procedure.steps.get().status == StepStatus.SCHEDULED


def test_it_refuses_a_procedure_without_steps_or_with_bad_values(api):
    response = api.post("/api/worklist/procedures/", {"patient_id": "X"}, format="json")
    assert response.status_code == 400
    assert "steps" in response.json()["errors"]
    response = api.post(
        "/api/worklist/procedures/",
        {
            "patient_sex": "Q",
            "accession_number": "A" * 17,
            "steps": [{"station_ae_title": "BAD\\" + "X" * 17, "start_time": "9am"}],
        },
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert {"patient_sex", "accession_number", "steps"} <= set(errors)
    assert RequestedProcedure.objects.count() == 0


def test_it_edits_a_procedure_and_a_step_and_records_the_status_change(api):
    procedure = make_procedure()
    step = procedure.steps.get()
    response = api.patch(
        f"/api/worklist/procedures/{procedure.pk}/",
        {"patient_name": "NEW^NAME"},
        format="json",
    )
    assert response.status_code == 200
    assert RequestedProcedure.objects.get().patient_name_search == "new^name"
    response = api.patch(
        f"/api/worklist/steps/{step.pk}/", {"status": "MISSED", "modality": "MR"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "MISSED"
    history = api.get(f"/api/worklist/steps/{step.pk}/history/").json()
    assert [(h["old_status"], h["new_status"], h["source"]) for h in history] == [
        ("SCHEDULED", "MISSED", "console")
    ]


def test_deleting_the_last_step_deletes_the_procedure(api):
    procedure = make_procedure(statuses=(S, C))
    first, second = procedure.steps.order_by("id")
    response = api.delete(f"/api/worklist/steps/{first.pk}/")
    assert response.json() == {"procedures": 0, "steps": 1, "procedure_ids": []}
    response = api.delete(f"/api/worklist/steps/{second.pk}/")
    assert response.json() == {"procedures": 1, "steps": 1, "procedure_ids": [procedure.pk]}
    assert not RequestedProcedure.objects.exists()


def test_deleting_an_in_progress_step_needs_the_confirmation_flag(api):
    procedure = make_procedure(statuses=(P,))
    step = procedure.steps.get()
    response = api.delete(f"/api/worklist/steps/{step.pk}/")
    assert response.status_code == 409
    assert "confirm" in response.json()["errors"]
    assert ScheduledProcedureStep.objects.filter(pk=step.pk).exists()
    response = api.delete(f"/api/worklist/steps/{step.pk}/?confirm=true")
    assert response.status_code == 200
    assert not RequestedProcedure.objects.exists()


def test_deleting_several_procedures_needs_confirmation_when_one_is_in_progress(api):
    quiet = make_procedure(accession_number="Q", statuses=(S,))
    busy = make_procedure(accession_number="B", statuses=(C, P))
    ids = [quiet.pk, busy.pk, 999999]
    response = api.post("/api/worklist/procedures/delete/", {"ids": ids}, format="json")
    assert response.status_code == 409
    assert RequestedProcedure.objects.count() == 2
    response = api.post(
        "/api/worklist/procedures/delete/", {"ids": ids, "confirm": True}, format="json"
    )
    assert response.json() == {
        "procedures": 2,
        "steps": 3,
        "procedure_ids": sorted([quiet.pk, busy.pk]),
    }
    assert response.status_code == 200
    response = api.delete(f"/api/worklist/procedures/{quiet.pk}/")
    assert response.status_code == 404


def test_deleting_one_procedure_follows_the_same_rule(api):
    busy = make_procedure(statuses=(P,))
    assert api.delete(f"/api/worklist/procedures/{busy.pk}/").status_code == 409
    assert api.delete(f"/api/worklist/procedures/{busy.pk}/?confirm=1").status_code == 200
    assert not RequestedProcedure.objects.exists()


def test_reset_puts_a_step_back_to_scheduled_and_refuses_a_scheduled_one(api):
    procedure = make_procedure(statuses=(C,))
    step = procedure.steps.get()
    response = api.post(f"/api/worklist/steps/{step.pk}/reset/")
    assert response.status_code == 200
    assert response.json()["status"] == "SCHEDULED"
    response = api.post(f"/api/worklist/steps/{step.pk}/reset/")
    assert response.status_code == 409
    assert response.json()["errors"] == {"status": ["The step is already SCHEDULED."]}
    assert StepStatusChange.objects.filter(step=step).count() == 1


def test_clear_deletes_only_procedures_whose_steps_are_all_final(api):
    done = make_procedure(accession_number="DONE", statuses=(C, M, D, X))
    make_procedure(accession_number="OPEN", statuses=(C, S))
    make_procedure(accession_number="BUSY", statuses=(P,))
    response = api.post("/api/worklist/procedures/clear/")
    assert response.json() == {"procedures": 1, "steps": 4, "procedure_ids": [done.pk]}
    assert sorted(RequestedProcedure.objects.values_list("accession_number", flat=True)) == [
        "BUSY",
        "OPEN",
    ]


def test_it_imports_the_wl_files_of_a_folder_once(api, wlistdb):
    response = api.post("/api/worklist/procedures/import/", {"folder": str(wlistdb)}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["imported"]) == 10
    assert body["failed"] == []
    vivaldi = RequestedProcedure.objects.get(study_instance_uid="1.2.276.0.7230010.3.2.101")
    assert vivaldi.patient_name == "VIVALDI^ANTONIO"
    step = vivaldi.steps.get()
    assert (step.station_ae_title, step.modality, step.start_date, step.start_time) == (
        "AA32\\AA33",
        "MR",
        datetime.date(1995, 10, 15),
        "085607",
    )
    again = api.post("/api/worklist/procedures/import/", {"folder": str(wlistdb)}, format="json")
    assert again.json()["imported"] == []
    assert all("already in the worklist" in f["error"] for f in again.json()["failed"])
    assert RequestedProcedure.objects.count() == 10


def test_it_imports_uploaded_files_and_reports_the_ones_that_are_not_worklist_items(api, wlistdb):
    with (wlistdb / "wklist4.wl").open("rb") as good, (wlistdb / "wklist4.dump").open("rb") as bad:
        response = api.post(
            "/api/worklist/procedures/import/", {"files": [good, bad]}, format="multipart"
        )
    body = response.json()
    assert [item["name"] for item in body["imported"]] == ["wklist4.wl"]
    assert [item["name"] for item in body["failed"]] == ["wklist4.dump"]
    assert body["failed"][0]["error"].startswith("not a worklist item")


def test_import_refuses_a_missing_folder(api, tmp_path):
    response = api.post(
        "/api/worklist/procedures/import/", {"folder": str(tmp_path / "nope")}, format="json"
    )
    assert response.status_code == 400
    assert "folder" in response.json()["errors"]


def test_the_worklist_needs_a_login(anonymous):
    assert anonymous.get("/api/worklist/procedures/").status_code in (401, 403)


def test_editing_a_procedure_keeps_its_generated_study_uid(api):
    procedure = make_procedure()
    uid = procedure.study_instance_uid
    response = api.patch(
        f"/api/worklist/procedures/{procedure.pk}/",
        {"study_instance_uid": ":SERVER", "admission_id": "ADM-2"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["study_instance_uid"] == uid
