@echo off
rem 7) merge DFM: put the face of a .dfm model (DeepFaceLive's ONNX file: exported here or by DFL, or a
rem community model) in workspace\model onto every data_dst frame: data_dst\merged and
rem data_dst\merged_mask. Interactive window on a terminal; batch with the default settings otherwise.
rem Several .dfm files: --force-model-name NAME (the file name without .dfm), else the newest; a file
rem elsewhere: --model-dir path\to\X.dfm. DFL's files do not say their face type: --dfm-face-type wf (or h, mf, f, head)
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" merge ^
    --input-dir "%WORKSPACE%\data_dst" ^
    --output-dir "%WORKSPACE%\data_dst\merged" ^
    --output-mask-dir "%WORKSPACE%\data_dst\merged_mask" ^
    --aligned-dir "%WORKSPACE%\data_dst\aligned" ^
    --model-dir "%WORKSPACE%\model" ^
    --model DFM ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
