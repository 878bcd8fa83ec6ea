-- Auto-routing rule of a PACS (Orthanc) to the mslesion node: when a study has been quiet
-- for StableAge seconds, its MR series go to the DICOM modality named 'mslesion'.
-- A study that already holds a SEG (the node's results, sent back) is not routed again:
-- otherwise each arrival of the results would start a second analysis of the same study.
-- The end-to-end tests (tests/e2e/) run this very file.
function OnStableStudy(studyId, tags, metadata)
  local series = ParseJson(RestApiGet('/studies/' .. studyId .. '/series'))
  local mr = {}
  for _, s in ipairs(series) do
    local modality = s['MainDicomTags']['Modality']
    if modality == 'SEG' then
      print('mslesion route: study ' .. studyId .. ' already has a SEG, not routed')
      return
    end
    if modality == 'MR' then
      table.insert(mr, s['ID'])
    end
  end
  if #mr > 0 then
    print('mslesion route: study ' .. studyId .. ', ' .. #mr .. ' MR series to mslesion')
    RestApiPost('/modalities/mslesion/store', DumpJson(mr, true))
  end
end
