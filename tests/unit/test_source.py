"""Reading real files: encodings, delimiters, quoting, refusals. Files on disk, no Redis."""
import gzip
import io
import zipfile

import pytest

from producers.source import Source
from producers.split import chunks, scan
from worker.errors import FileProblem


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def records(path, chunk_rows=1000, **options):
    source = Source.open(path)
    plan = scan(source, **options)
    return plan, [(n, r) for c in chunks(source, plan, chunk_rows) for n, r in zip(c.row_numbers, c.rows)]


def test_bom_is_stripped(tmp_path):
    path = write(tmp_path, "bom.csv", "\ufeffemail,event_name\nzoë@example.com,Ordered\n".encode("utf-8"))
    plan, rows = records(path)
    assert plan.sniffed.encoding == "utf-8-sig" and plan.columns.header[0] == "email"
    assert rows == [(2, ["zoë@example.com", "Ordered"])]


def test_cp1252_is_detected_when_utf8_fails(tmp_path):
    path = write(tmp_path, "excel.csv", "email,event_name,city\na@b.co,Commandé,Zürich\n".encode("cp1252"))
    plan, rows = records(path)
    assert plan.sniffed.encoding == "cp1252" and "cp1252" in plan.sniffed.encoding_reason
    assert rows[0][1] == ["a@b.co", "Commandé", "Zürich"]


def test_cp1252_byte_late_in_the_file_switches_the_whole_file(tmp_path):
    body = "email,event_name\n" + "a@b.co,x\n" * 20_000 + "a@b.co,café\n"
    path = write(tmp_path, "late.csv", body.encode("cp1252"))
    plan, rows = records(path)
    assert plan.sniffed.encoding == "cp1252" and "line 20002" in plan.sniffed.encoding_reason
    assert rows[-1] == (20_002, ["a@b.co", "café"])


def test_semicolon_and_tab_files(tmp_path):
    semi = write(tmp_path, "semi.csv", b"email;event_name;amount\na@b.co;Paid;12,50\n")
    plan, rows = records(semi)
    assert plan.sniffed.delimiter == ";" and rows[0][1] == ["a@b.co", "Paid", "12,50"]
    tab = write(tmp_path, "tab.tsv", b"email\tevent_name\na@b.co\tPaid\n")
    assert records(tab)[0].sniffed.delimiter == "\t"


def test_excel_sep_hint_line(tmp_path):
    path = write(tmp_path, "sep.csv", b"sep=;\nemail;event_name\na@b.co;x\n")
    plan, rows = records(path)
    # Excel hides the hint line, so the header is row 1 there and here.
    assert plan.sniffed.delimiter == ";" and rows == [(2, ["a@b.co", "x"])]


def test_quoted_fields_with_newlines_are_one_record_and_rows_count_records(tmp_path):
    data = b'email,event_name,note\na@b.co,x,"line one\nline two"\nb@b.co,y,"a, ""quoted"" comma"\r\nc@b.co,z,plain\n'
    plan, rows = records(write(tmp_path, "multi.csv", data), chunk_rows=2)
    assert rows == [(2, ["a@b.co", "x", "line one\nline two"]), (3, ["b@b.co", "y", 'a, "quoted" comma']),
                    (4, ["c@b.co", "z", "plain"])]
    assert plan.rows == 3


def test_spaces_after_commas_and_quoted_values(tmp_path):
    path = write(tmp_path, "vero.csv", b'email, event_name, note\na@b.co, Completes checkout, "x, y"\n')
    assert records(path)[1] == [(2, ["a@b.co", "Completes checkout", "x, y"])]


def test_blank_records_are_skipped_but_keep_row_numbers(tmp_path):
    path = write(tmp_path, "blank.csv", b"email,event_name\na@b.co,x\n\n,\nb@b.co,y\n")
    plan, rows = records(path)
    assert plan.rows == 2 and plan.blank == 2 and [n for n, _ in rows] == [2, 5]


def test_gzip_and_stdin(tmp_path):
    data = b"email,event_name\na@b.co,x\n"
    assert records(write(tmp_path, "e.csv.gz", gzip.compress(data)))[1] == [(2, ["a@b.co", "x"])]
    source = Source.open("-", stdin=io.BytesIO(data))
    plan = scan(source)
    assert [c.rows for c in chunks(source, plan, 10)] == [[["a@b.co", "x"]]]
    source.close()
    assert not source.path.exists()


def test_xlsx_renamed_to_csv_is_refused_with_save_as_advice(tmp_path):
    path = tmp_path / "events.csv"
    with zipfile.ZipFile(path, "w") as workbook:
        workbook.writestr("[Content_Types].xml", "<Types/>")
        workbook.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(FileProblem) as caught:
        scan(Source.open(path))
    assert caught.value.code == "not_csv"
    assert "Excel workbook" in str(caught.value) and "Save as" in str(caught.value)


@pytest.mark.parametrize("data, code, words", [
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "not_csv", ".xls"),
    ("email,event_name\n".encode("utf-16"), "not_csv", "UTF-16"),
    (b"email,event_name\n\x00\x01\x02binary", "binary_file", "NUL"),
    (b"", "empty_file", "empty"),
    (b"email,event_name\na@b.co,\"x\"y\n", "bad_csv", "line 2"),
])
def test_other_refusals(tmp_path, data, code, words):
    with pytest.raises(FileProblem) as caught:
        scan(Source.open(write(tmp_path, "f.csv", data)))
    assert caught.value.code == code and words in str(caught.value)


def test_unterminated_quote_names_the_line_where_it_opened(tmp_path):
    body = b"email,event_name,note\n" + b"a@b.co,x,ok\n" * 500 + b'a@b.co,x,"never closed\nmore\nlines\n'
    with pytest.raises(FileProblem) as caught:
        scan(Source.open(write(tmp_path, "q.csv", body)))
    assert caught.value.code == "unterminated_quote"
    assert "starts on line 502" in str(caught.value)


def test_mixed_identifiers_fail_unless_forced(tmp_path):
    path = write(tmp_path, "mixed.csv", b"_cio_name,_cio_customer_id\nx,cust_1\nx,bob@example.com\n")
    with pytest.raises(FileProblem) as caught:
        scan(Source.open(path))
    assert caught.value.code == "mixed_identifiers" and "row 3" in str(caught.value)
    assert scan(Source.open(path), identifier="email").identifier == "email"


def test_identifier_is_detected(tmp_path):
    ids = write(tmp_path, "ids.csv", b"_cio_name,_cio_customer_id\nx,cust_1\n")
    emails = write(tmp_path, "emails.csv", b"_cio_name,_cio_customer_id\nx,a@b.co\n")
    assert scan(Source.open(ids)).identifier == "id"
    assert scan(Source.open(emails)).identifier == "email"


def test_unnamed_column_with_values_is_a_file_problem(tmp_path):
    ok = write(tmp_path, "ok.csv", b"email,event_name,\na@b.co,x,\n")
    assert scan(Source.open(ok)).columns.unnamed == (2,)
    bad = write(tmp_path, "bad.csv", b"email,event_name,\na@b.co,x,\na@b.co,x,lost\n")
    with pytest.raises(FileProblem, match="column C has no name"):
        scan(Source.open(bad))


# Excel for Mac's "CSV (Macintosh)": Mac Roman, lines ending in CR alone.
MAC_TEXT = ("email,event_name,customer,city,note\r"
            "anna@example.ch,Bestellung,Anna Müller,Zürich,Straße 5\r"
            "jose@example.es,Pedido,Señor José,Madrid,Café con leche\r")
MAC_ROWS = [(2, ["anna@example.ch", "Bestellung", "Anna Müller", "Zürich", "Straße 5"]),
            (3, ["jose@example.es", "Pedido", "Señor José", "Madrid", "Café con leche"])]


def test_a_mac_roman_file_is_refused_naming_the_word_and_mac_roman(tmp_path):
    path = write(tmp_path, "mac.csv", MAC_TEXT.encode("mac_roman"))
    with pytest.raises(FileProblem) as caught:
        scan(Source.open(path))
    message = str(caught.value)
    assert caught.value.code == "unlikely_encoding" and caught.value.line == 2
    assert "line 2 would hold 'MŸller'" in message and "as mac_roman ('Müller')" in message
    assert "--encoding mac_roman" in message and "cp850" not in message


@pytest.mark.parametrize("name", ["mac_roman", "macintosh"])
def test_a_mac_roman_file_with_cr_line_ends_is_read_exactly_with_its_encoding(tmp_path, name):
    plan, rows = records(write(tmp_path, "mac.csv", MAC_TEXT.encode("mac_roman")), encoding=name)
    assert (plan.sniffed.encoding, plan.sniffed.encoding_reason, plan.sniffed.delimiter) == (name, "given", ",")
    assert rows == MAC_ROWS and plan.rows == 2


def test_a_mac_roman_excel_hint_line_ends_in_cr_too(tmp_path):
    path = write(tmp_path, "mac.csv", ("sep=;\r" + MAC_TEXT.replace(",", ";")).encode("mac_roman"))
    plan, rows = records(path, encoding="mac_roman")
    assert plan.sniffed.sep_line and plan.sniffed.delimiter == ";" and rows == MAC_ROWS


def test_a_mac_roman_word_late_in_a_big_file_names_its_line(tmp_path):
    # 1 MiB blocks: the word is in the second; a few cp1252-looking bytes before it are not evidence
    body = "email,event_name,city\r" + "a@b.co,Ordered – paid,x\r" * 50_000 + "b@b.co,Ordered,Crème\r"
    with pytest.raises(FileProblem) as caught:
        scan(Source.open(write(tmp_path, "late.csv", body.encode("mac_roman"))))
    assert caught.value.code == "unlikely_encoding" and caught.value.line == 50_002
    assert "'Cr\\x8fme'" in str(caught.value) and "as mac_roman ('Crème')" in str(caught.value)


def test_a_dos_file_is_refused_naming_cp850(tmp_path):
    path = write(tmp_path, "dos.csv", "email,event_name,city\r\na@b.co,Bestellt,Zürich\r\n".encode("cp850"))
    with pytest.raises(FileProblem) as caught:
        scan(Source.open(path))
    assert caught.value.code == "unlikely_encoding" and "as cp850 ('Zürich')" in str(caught.value)
    assert "mac_roman" not in str(caught.value).split("cp1252 reads")[0]
    assert records(path, encoding="cp850")[1] == [(2, ["a@b.co", "Bestellt", "Zürich"])]


@pytest.mark.parametrize("encoding, text", [
    # Excel on Windows: €, smart quotes and dashes, accents; and real text's letters between letters
    ("cp1252", "email,event_name,name,note\r\n"
               "a@b.co,Paid 10 €,Renée O’Brien,“Premium” plan – it’s café time\r\n"
               "b@b.co,Commandé,Zoë Dupré,Škoda — cœur; naïve; D´Angelo; ÖSTERREICH; Brand™; col·lecció\r\n"),
    ("cp1252", "email,event_name\na@b.co,Commandé\n"),
    ("latin-1", "email,event_name,city\na@b.co,Commande,Besançon\nb@b.co,Pedido,Logroño\n"),
])
def test_real_cp1252_and_latin1_files_are_still_read_as_cp1252(tmp_path, encoding, text):
    plan, rows = records(write(tmp_path, "win.csv", text.encode(encoding)))
    assert plan.sniffed.encoding == "cp1252"
    assert [r for _, r in rows] == [line.split(",") for line in text.replace("\r\n", "\n").splitlines()[1:]]


@pytest.mark.parametrize("end", [b"\r\n\x1a", b"\x1a", b"\n\x1a"])
@pytest.mark.parametrize("zipped", [False, True])
def test_a_final_ctrl_z_is_the_end_of_the_file(tmp_path, end, zipped):
    data = b"email,event_name\r\na@b.co,Paid\r\nb@b.co,Paid" + end
    path = write(tmp_path, "dos.csv.gz" if zipped else "dos.csv", gzip.compress(data) if zipped else data)
    plan, rows = records(path)
    assert plan.rows == 2 and rows == [(2, ["a@b.co", "Paid"]), (3, ["b@b.co", "Paid"])]


def test_a_ctrl_z_anywhere_else_is_a_character_as_before(tmp_path):
    path = write(tmp_path, "z.csv", b"email,event_name\r\na@b.co,Pa\x1aid\r\n\x1a\r\nb@b.co,Paid\x1a\r\n")
    plan, rows = records(path)
    assert [r for _, r in rows] == [["a@b.co", "Pa\x1aid"], ["\x1a"], ["b@b.co", "Paid\x1a"]]
    with pytest.raises(FileProblem) as caught:
        scan(Source.open(write(tmp_path, "only.csv", b"\x1a")))
    assert caught.value.code == "empty_file"
